"""App-level scale run: a gallery of N synthetic feature vectors (default 1,000,000) in a real deployment.

    nice -n 5 python bench/gallery_scale.py [--n 1000000] [--factory "PCA128,IVF1024,PQ16"]

Steps, each timed: N `Image` rows (PostgreSQL COPY) and N synthetic 1280-d backbone features (clustered,
through `FeatureStore.append`, the store every import writes); the index built by the `rebuild_index` task
in a Celery worker (the same `indexing.build_and_activate` path; its peak RSS from /proc VmHWM); gunicorn's
first search (which loads the index: fetch + memory-mapped read), then HTTP search latency p50/p95 over
real photos (CUB-100 queries: the first request of each photo extracts its features, the repeats reuse
them); then 10,000 removals through `POST /api/v1/images/remove/`, chosen among the images the queries
return, and the time until no search returns any of them (before any rebuild). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import WORKER_FEATURES, Stack, ensure_postgres_database  # noqa: E402

DIM = 1280  # EfficientNet-Lite0's pooled features: what the configured backbone's store holds


def _multipart(fields: dict[str, str], files: list[tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, filename, data in files:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                  f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


def _post(url: str, body: bytes, content_type: str, token: str | None = None) -> tuple[float, dict]:
    headers = {"Content-Type": content_type}
    if token:
        headers["Authorization"] = f"Token {token}"
    started = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers), timeout=600) as response:
        payload = json.loads(response.read())
    return time.perf_counter() - started, payload


def search(base: str, photo: tuple[str, bytes], k: int = 20) -> tuple[float, list[int]]:
    body, content_type = _multipart({"k": str(k)}, [("image", photo[0], photo[1])])
    seconds, payload = _post(base + "/api/v1/search/", body, content_type)
    return seconds, [hit["image_id"] for hit in payload["results"]]


def insert_rows(env: dict[str, str], n: int) -> float:
    """N gallery rows by COPY (ids 1..N); returns seconds."""
    import psycopg

    started = time.perf_counter()
    url = env["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY gallery_image (id, sha256, role, file, thumbnail, label, split, original_name, source, "
                      "format, width, height, created_at, updated_at) FROM STDIN") as copy:
            for i in range(1, n + 1):
                copy.write_row((i, f"{i:064x}", "gallery", f"originals/synthetic/{i}.jpg",
                                f"thumbnails/synthetic/{i}.jpg", f"c{i % 1000}", "", f"synthetic-{i}", "",
                                "JPEG", 224, 224, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))
        cur.execute("SELECT setval(pg_get_serial_sequence('gallery_image', 'id'), %s)", (n,))
    return time.perf_counter() - started


def write_features(data_dir: Path, n: int, backbone: str, chunk: int = 50_000) -> float:
    """N clustered, L2-normalised 1280-d vectors appended to the backbone's feature store; returns seconds."""
    from retrieval.feature_store import FeatureStore

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(1000, DIM)).astype(np.float32)
    store = FeatureStore(data_dir / "features", backbone, DIM)
    started = time.perf_counter()
    for start in range(1, n + 1, chunk):
        ids = np.arange(start, min(n + 1, start + chunk), dtype=np.int64)
        vectors = centres[ids % 1000] + 0.6 * rng.normal(size=(len(ids), DIM)).astype(np.float32)
        vectors = np.maximum(vectors, 0)  # pooled ReLU features are non-negative
        store.append(ids, vectors)
    return time.perf_counter() - started


def vm_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--factory", default="PCA128,IVF1024,PQ16")
    parser.add_argument("--nprobe", type=int, default=16)
    parser.add_argument("--remove", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/cub100")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/refind-scale"))
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refind_scale")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/5")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict = {"n": args.n, "factory": args.factory, "nprobe": args.nprobe, "load_before": os.getloadavg()}
    ensure_postgres_database(args.database_url, fresh=True)
    if args.data_dir.exists():
        import shutil

        shutil.rmtree(args.data_dir)
    stack = Stack(args.data_dir, args.database_url, args.broker, {
        "REFIND_INDEX_FACTORY": args.factory, "REFIND_IVF_NPROBE": str(args.nprobe),
        "REFIND_THROTTLE_SEARCH": "1000000/min", "REFIND_ONLINE_LEARNING": "0", "REFIND_INDEX_CHECK_SECONDS": "1",
        "REFIND_REFRESH_INDEX_SECONDS": "100000",
    })
    try:
        stack.manage("migrate", "--noinput", "-v0")
        report["rows_seconds"] = round(insert_rows(stack.env, args.n), 1)
        backbone = stack.manage("shell", "-c", "from django.conf import settings; print(settings.BACKBONE)")
        backbone = backbone.strip().splitlines()[-1]  # the shell may print its auto-imports first
        report["features_seconds"] = round(write_features(args.data_dir, args.n, backbone), 1)
        report["features_file_gb"] = round(sum(p.stat().st_size for p in (args.data_dir / "features").rglob(
            "vectors.f32")) / 1e9, 2)
        print(json.dumps(report), flush=True)

        worker = stack._spawn("worker-default", [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q",
                                                 "default", "-P", "solo", "-n", f"scale-{os.getpid()}@%h",
                                                 *WORKER_FEATURES])
        started = time.perf_counter()
        stack.manage("shell", "-c", "import time; from webapp.gallery.tasks import rebuild_index; "
                     "from webapp.gallery.models import IndexVersion; rebuild_index.apply_async(queue='default')\n"
                     "while not IndexVersion.objects.filter(is_active=True).exists(): time.sleep(1)", timeout=7300)
        report["build_seconds_incl_queue"] = round(time.perf_counter() - started, 1)
        report["worker_peak_rss_mb"] = vm_hwm_mb(worker.pid)
        stack.check_alive()
        index_file = next((args.data_dir / "indexes").glob("*.faiss"))
        report["index_file_mb"] = round(index_file.stat().st_size / 1e6, 1)
        print(json.dumps(report), flush=True)

        stack.manage("shell", "-c", "from django.contrib.auth.models import User; from rest_framework.authtoken."
                     "models import Token; u = User.objects.create_user('bench', password='pw-bench-123456', "
                     "is_staff=True); print(Token.objects.create(user=u).key)")
        token = stack.manage("shell", "-c", "from rest_framework.authtoken.models import Token; "
                             "print(Token.objects.get().key)").strip().splitlines()[-1]
        base = stack.start_web(workers=1)
        stack.wait_ready()
        photos = [(p.name, p.read_bytes()) for p in sorted((args.dataset / "images").rglob("*.jpg"))[::300][:20]]
        first, ranked = search(base, photos[0])
        report["first_search_seconds_incl_index_load"] = round(first, 2)
        report["web_peak_rss_mb"] = max(filter(None, (vm_hwm_mb(p) for p in _children(stack.processes["web"].pid))),
                                        default=None)
        latencies, returned = [], {}
        for i in range(args.searches):
            photo = photos[i % len(photos)]
            seconds, ranked = search(base, photo)
            latencies.append(seconds)
            returned[photo[0]] = ranked
        warm = sorted(latencies[len(photos):])
        report["search_p50_ms"] = round(1000 * statistics.median(warm), 1)
        report["search_p95_ms"] = round(1000 * warm[int(0.95 * (len(warm) - 1))], 1)
        report["search_first_pass_p50_ms"] = round(1000 * statistics.median(latencies[:len(photos)]), 1)
        print(json.dumps(report), flush=True)

        shown = sorted({i for ids in returned.values() for i in ids})
        rng = random.Random(0)
        others = rng.sample(range(1, args.n + 1), args.remove * 2)
        doomed = list(dict.fromkeys([*shown, *others]))[: args.remove]
        body = json.dumps({"ids": doomed}).encode()
        seconds, payload = _post(base + "/api/v1/images/remove/", body, "application/json", token)
        report["remove_request_seconds"] = round(seconds, 2)
        report["removed"] = payload["removed"]
        report["removed_among_shown"] = len(shown)
        gone = set(doomed)
        removed_at = time.perf_counter()
        while True:  # a pass of searches over every query photo; the first pass that shows none of them counts
            pass_started = time.perf_counter()
            leftovers = sum(len(gone & set(search(base, photo)[1])) for photo in photos)
            if not leftovers or pass_started - removed_at > 120:
                break
        report["removed_still_shown"] = leftovers
        report["removal_visible_after_seconds"] = round(pass_started - removed_at, 2)
        _, after = search(base, photos[0])
        report["results_after_removal"] = len(after)
        report["load_after"] = os.getloadavg()
    finally:
        stack.stop()
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))


def _children(pid: int) -> list[int]:
    """The gunicorn master and its workers."""
    found = [pid]
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        if f"PPid:\t{pid}\n" in text:
            found.append(int(status.parent.name))
    return found


if __name__ == "__main__":
    main()
