"""Click-to-visible latency: a click until the next identical query is served by the updated model.

A real stack on this machine: gunicorn (web), Celery workers on Redis (one for `training`, one for
`default`), SQLite, a 10k-image gallery
(synthetic 1280-d features in 100 labelled clusters, split per label; the query is a real JPEG). Each
trial: search, mark the top wrong-label result "not similar" and click a right one (API), then repeat
the same search until its model_version changes. Prints each trial and the median.

python -m bench.click_latency [--gallery 10000] [--trials 5]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np

from bench.stack import WORKER_FEATURES

ROOT = Path(__file__).resolve().parents[1]


def populate(n: int) -> None:
    """Gallery rows + synthetic features + an index, inside the configured data dir (run in a subprocess)."""
    import django

    django.setup()
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage
    from PIL import Image as PILImage

    from webapp.feedback.splits import split_gallery
    from webapp.gallery import indexing
    from webapp.gallery.models import Image
    from webapp.runtime import runtime

    thumb = io.BytesIO()
    PILImage.new("RGB", (64, 64), (90, 90, 90)).save(thumb, format="JPEG")
    name = default_storage.save("thumbnails/bench.jpg", ContentFile(thumb.getvalue()))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(100, 1280))
    labels = rng.integers(0, 100, n)
    features = np.abs(centres[labels] + 1.5 * rng.normal(size=(n, 1280))).astype(np.float32)
    rows = Image.objects.bulk_create([
        Image(sha256=f"{i:064x}", file=name, thumbnail=name, label=f"class-{labels[i]:03d}", format="JPEG",
              width=64, height=64)
        for i in range(n)
    ], batch_size=2000)
    runtime.feature_store().append(np.array([r.pk for r in rows]), features)
    split_gallery(seed=0)
    indexing.build_and_activate()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


OPENER = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def post(url: str, body: bytes, content_type: str) -> dict:
    """POST as one visitor (the session cookie is kept: impressions belong to who searched)."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    with OPENER.open(request, timeout=120) as response:
        return json.loads(response.read())


def search(base: str, jpeg: bytes) -> dict:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    return post(f"{base}/api/v1/search/", body, f"multipart/form-data; boundary={boundary}")


def judge(base: str, found: dict, image_id: int, judgement: str) -> dict:
    body = json.dumps({"query_id": found["query_id"], "impression_id": found["impression_id"],
                       "image_id": image_id, "judgement": judgement}).encode()
    return post(f"{base}/api/v1/feedback/", body, "application/json")


def trial(base: str, jpeg: bytes, judged: set[int], timeout: float = 120.0) -> float:
    """Judge results not judged before (so the triplets are new), then poll four times a second."""
    found = search(base, jpeg)
    version = found["model_version"]
    fresh = [hit["image_id"] for hit in found["results"] if hit["image_id"] not in judged]
    judged.update(fresh[:1] + fresh[-1:])
    judge(base, found, fresh[0], "dissimilar")
    judge(base, found, fresh[-1], "click")
    clicked = time.perf_counter()
    while time.perf_counter() - clicked < timeout:
        if search(base, jpeg)["model_version"] != version:
            return time.perf_counter() - clicked
        time.sleep(0.25)
    raise TimeoutError("the update never became visible")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gallery", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="refind-click-latency-"))
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),  # as run.sh / compose
           "REFIND_DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "webapp.settings",
           "CELERY_BROKER_URL": args.broker, "REFIND_ONLINE_MIN_NEW_TRIPLETS": "1",
           "REFIND_ONLINE_DEBOUNCE_SECONDS": "0.2", "REFIND_PROMOTION_GUARD": "off",
           "REFIND_INDEX_CHECK_SECONDS": "0.2"}
    run = {"cwd": ROOT, "env": env, "check": True}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], **run)
    subprocess.run([sys.executable, "-c", f"from bench.click_latency import populate; populate({args.gallery})"],
                   **run)
    port = free_port()
    web = subprocess.Popen([sys.executable, "-m", "gunicorn", "webapp.wsgi", "-b", f"127.0.0.1:{port}", "-w", "2",
                            "--timeout", "120"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    workers = [  # as deployed: training runs never wait behind reports and index jobs
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", queue, "-P", "solo",
                          "-n", f"{queue}@%h", *WORKER_FEATURES,
                          "--loglevel", "WARNING"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        for queue in ("training", "default")
    ]
    import random

    from webapp.gallery.demo import CLASSES

    image = next(iter(CLASSES.values()))(random.Random(0))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG")
    jpeg = buffer.getvalue()
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                search(base, jpeg)
                break
            except OSError:
                time.sleep(0.5)
        seconds: list[float] = []
        judged: set[int] = set()
        for number in range(args.trials):
            seconds.append(trial(base, jpeg, judged))
            time.sleep(5)  # let the previous version's report task finish: trials measure a quiet worker
            print(f"trial {number + 1}: {seconds[-1]:.2f} s", flush=True)
        print(f"gallery {args.gallery}: click-to-visible median {statistics.median(seconds):.2f} s, "
              f"max {max(seconds):.2f} s over {len(seconds)} trials")
    finally:
        for process in (web, *workers):
            process.terminate()
        for process in (web, *workers):
            process.wait(timeout=60)


if __name__ == "__main__":
    main()
