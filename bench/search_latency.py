"""Search latency p50/p95: in process (decode + extract one query + FAISS search) and through the HTTP API.

    python -m bench.search_latency                          # 10k and 100k gallery vectors
    python -m bench.search_latency --sizes 10000 --queries 30

For each gallery size a throw-away REFIND_DATA_DIR is migrated and filled with fake gallery images
(database rows whose files all point to one thumbnail) and synthetic 1280-d features, indexed with
the app's own `build_and_activate` (factory from REFIND_INDEX_FACTORY, default Flat). Then gunicorn
serves the real app on 127.0.0.1 and every query JPEG (distinct CUB photos, so the app really stores
and embeds each one) is sent once to ``POST /api/v1/search/``, alternating with the in-process path
on the same photo and the same index file, so both see the same machine load. Requests carry no
cookies (each creates a session, like a plain API client). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = REPO_ROOT / ".." / "shared" / "datasets" / "cub100"
DIM = 1280
CHUNK = 20_000


def synthetic_features(n: int, seed: int) -> np.ndarray:
    """Non-negative clustered vectors shaped like pooled ReLU6 features (1280-d)."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.standard_normal((max(1, n // 100), DIM), dtype=np.float32))
    noise = np.abs(rng.standard_normal((n, DIM), dtype=np.float32))
    return centres[rng.integers(0, len(centres), n)] + 0.5 * noise


def populate(n: int, seed: int) -> None:
    """Fill the configured (empty, migrated) data dir with `n` fake gallery images, features and an index."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    from webapp.gallery import indexing
    from webapp.gallery.models import Image
    from webapp.runtime import runtime

    thumb = default_storage.save("thumbnails/bench.jpg", ContentFile(_tiny_jpeg()))
    Image.objects.bulk_create(
        (Image(sha256=f"{i:064x}", role=Image.Role.GALLERY, file=thumb, thumbnail=thumb, label=f"c{i % 100}",
               original_name=f"fake{i}.jpg", format="JPEG", width=64, height=64) for i in range(n)),
        batch_size=5000,
    )
    ids = np.fromiter(Image.objects.order_by("id").values_list("id", flat=True), dtype=np.int64)
    features = synthetic_features(n, seed)
    store = runtime.feature_store()
    for start in range(0, n, CHUNK):
        store.append(ids[start : start + CHUNK], features[start : start + CHUNK])
    record = indexing.build_and_activate()
    print(f"populated: {record}")


def _tiny_jpeg() -> bytes:
    import io

    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.new("RGB", (64, 64), (120, 160, 90)).save(out, format="JPEG")
    return out.getvalue()


def prepare_data_dir(n: int, seed: int) -> Path:
    """A migrated, populated temporary REFIND_DATA_DIR (caller removes it)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"refind-bench-{n}-"))
    env = app_env(data_dir)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "-v", "0"], cwd=REPO_ROOT, env=env, check=True)
    subprocess.run(
        [python, "-m", "bench.search_latency", "--populate", str(n), "--seed", str(seed)],
        cwd=REPO_ROOT, env=env, check=True,
    )
    return data_dir


def app_env(data_dir: Path, omp_threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ, REFIND_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="webapp.settings")
    if omp_threads:
        env["OMP_NUM_THREADS"] = str(omp_threads)
    env.setdefault("DJANGO_DEBUG", "false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def start_gunicorn(data_dir: Path, port: int, workers: int, omp_threads: int | None) -> subprocess.Popen:
    """The real app on 127.0.0.1:`port`; returns once it answers (each worker loads the backbone)."""
    gunicorn = Path(sys.executable).with_name("gunicorn")
    server = subprocess.Popen(
        [str(gunicorn), "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "--timeout", "120"],
        cwd=REPO_ROOT, env=app_env(data_dir, omp_threads), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return server
        except OSError:
            if server.poll() is not None:
                raise RuntimeError("gunicorn exited during start-up") from None
            time.sleep(0.5)
    server.terminate()
    raise RuntimeError("gunicorn did not start within 120 s")


def post_search(port: int, jpeg: bytes, k: int) -> float:
    """One multipart POST /api/v1/search/ on a fresh connection; returns milliseconds. Raises unless 200."""
    boundary = uuid.uuid4().hex
    body = b"".join([
        f'--{boundary}\r\nContent-Disposition: form-data; name="k"\r\n\r\n{k}\r\n'.encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
        f"Content-Type: image/jpeg\r\n\r\n".encode(),
        jpeg, f"\r\n--{boundary}--\r\n".encode(),
    ])
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/api/v1/search/", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    response = conn.getresponse()
    payload = response.read()
    elapsed = (time.perf_counter() - start) * 1000
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"search returned {response.status}: {payload[:300]!r}")
    return elapsed


class InProcess:
    """The search path without Django: decode, preprocess, extract, normalise, FAISS search."""

    def __init__(self, index_path: Path) -> None:
        from retrieval.backbones import load_backbone
        from retrieval.extraction import FeatureExtractor
        from retrieval.index import load_index

        self.backbone = load_backbone()
        self.extractor = FeatureExtractor(self.backbone)
        self.index = load_index(index_path)

    def search_ms(self, jpeg: bytes, k: int) -> float:
        from retrieval.extraction import preprocess
        from retrieval.heads import l2_normalise
        from retrieval.images import decode_image
        from retrieval.index import search

        start = time.perf_counter()
        rgb = decode_image(jpeg, max_bytes=20 * 1024 * 1024).rgb
        vector = l2_normalise(self.extractor.features([preprocess(rgb, self.backbone)]))
        search(self.index, vector, k + 2)
        return (time.perf_counter() - start) * 1000


def active_index_path(data_dir: Path) -> Path:
    return max((data_dir / "indexes").glob("index-*.faiss"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure_size(n: int, jpegs: list[bytes], args: argparse.Namespace) -> dict[str, list[float]]:
    """Alternate in-process and HTTP searches over distinct query photos at one gallery size."""
    start = time.perf_counter()
    data_dir = prepare_data_dir(n, args.seed)
    print(f"{n} gallery vectors: data dir ready in {time.perf_counter() - start:.0f} s", flush=True)
    local = InProcess(active_index_path(data_dir))
    times: dict[str, list[float]] = {"in-process": [], "http": []}
    server = None
    try:
        if not args.skip_http:
            port = free_port()
            server = start_gunicorn(data_dir, port, args.workers, args.omp_threads)
            for jpeg in jpegs[: args.warmup * args.workers]:  # every worker loads model and index
                post_search(port, jpeg, args.k)
        for jpeg in jpegs[: args.warmup]:
            local.search_ms(jpeg, args.k)
        for jpeg in jpegs[args.warmup * max(1, args.workers) :]:
            times["in-process"].append(local.search_ms(jpeg, args.k))
            if server is not None:
                times["http"].append(post_search(port, jpeg, args.k))
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        shutil.rmtree(data_dir, ignore_errors=True)
    return times


def query_jpegs(dataset: Path, count: int) -> list[bytes]:
    paths = sorted((dataset / "images").glob("*/*.jpg"))
    step = max(1, len(paths) // count)
    return [p.read_bytes() for p in paths[::step][:count]]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=60, help="measured queries per size (after warm-up)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument(
        "--omp-threads", type=int, help="OMP_NUM_THREADS for gunicorn; FAISS/torch threads in process (default: unset)"
    )
    parser.add_argument("--populate", type=int, help=argparse.SUPPRESS)  # internal: run inside the app's env
    args = parser.parse_args()
    if args.populate:
        populate(args.populate, args.seed)
        return

    if args.omp_threads:
        import faiss
        import torch

        faiss.omp_set_num_threads(args.omp_threads)
        torch.set_num_threads(args.omp_threads)
    print(f"OMP threads: {args.omp_threads or 'default'}; load average {os.getloadavg()[0]:.1f}", flush=True)
    jpegs = query_jpegs(args.dataset, args.queries + args.warmup * max(1, args.workers))
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        times = measure_size(n, jpegs, args)
        local_p50 = statistics.median(times["in-process"])
        for path, values in times.items():
            if values:
                p50 = statistics.median(values)
                rows.append((n, path, len(values), p50, percentile(values, 95), p50 / local_p50))
    print("\n| gallery | path | queries | p50 ms | p95 ms | p50 / in-process p50 |\n|---:|---|---:|---:|---:|---:|")
    for n, path, count, p50, p95, ratio in rows:
        print(f"| {n:,} | {path} | {count} | {p50:.1f} | {p95:.1f} | {ratio:.2f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} (2 cores)")


if __name__ == "__main__":
    main()
