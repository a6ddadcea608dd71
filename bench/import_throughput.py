"""Import throughput with 1 and 2 Celery worker processes on CUB-100 files (images/s and the ratio).

    nice -n 5 python bench/import_throughput.py [--every 10] [--chunk 32]

For each worker count: a fresh PostgreSQL database and data dir, N solo workers on the `default` queue
(one forward pass at a time each: REFIND_EXTRACT_PARALLEL=1, OMP_NUM_THREADS=1, so N workers want N cores),
a warm-up import (every worker loads the backbone), then `import_images --detach` of every `--every`-th
CUB-100 photo (copied to /tmp, labels from folders). Throughput is files / (last chunk finished - first
chunk started) from the chunks' own timestamps; the index build that follows is timed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.stack import WORKER_FEATURES, Stack, ensure_postgres_database  # noqa: E402

STATE = ("import json; from webapp.gallery.models import ImportJob; from webapp.gallery.jobs import job_progress; "
         "from django.db.models import Min, Max; job = ImportJob.objects.get(pk={pk}); p = job_progress(job); "
         "t = job.chunks.aggregate(a=Min('started_at'), b=Max('finished_at')); "
         "p['chunk_seconds'] = (t['b'] - t['a']).total_seconds() if t['b'] and job.status == 'done' else None; "
         "p['index_seconds'] = (job.finished_at - t['b']).total_seconds() if job.finished_at else None; "
         "print(json.dumps(p))")


def copy_subset(dataset: Path, target: Path, every: int, offset: int = 0) -> int:
    if target.exists():
        shutil.rmtree(target)
    photos = sorted((dataset / "images").rglob("*.jpg"))[offset::every]
    for photo in photos:
        destination = target / photo.parent.name / photo.name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(photo, destination)
    return len(photos)


def run(workers: int, args, source: Path, warmup: Path) -> dict:
    url = f"{args.database_url}_{workers}w"
    ensure_postgres_database(url, fresh=True)
    data_dir = Path(f"/tmp/refind-import-{workers}w")
    shutil.rmtree(data_dir, ignore_errors=True)
    stack = Stack(data_dir, url, args.broker, {"REFIND_EXTRACT_PARALLEL": "1", "OMP_NUM_THREADS": "1",
                                               "REFIND_IMPORT_CHUNK_SIZE": str(args.chunk)})
    try:
        stack.manage("migrate", "--noinput", "-v0")
        for n in range(workers):
            stack._spawn(f"worker-{n}", [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "default",
                                         "-P", "solo", "-n", f"import{n}-{os.getpid()}@%h", *WORKER_FEATURES,
                                         "--loglevel", "INFO"])
        stack.env["REFIND_IMPORT_CHUNK_SIZE"] = "1"  # warm-up: one file per chunk, every worker gets some
        wait(stack, job_id(stack.manage("import_images", str(warmup), "--detach", "--no-index")))
        stack.env["REFIND_IMPORT_CHUNK_SIZE"] = str(args.chunk)
        load = os.getloadavg()
        state = wait(stack, job_id(stack.manage("import_images", str(source), "--labels-from-dirs", "--detach")))
        return {"workers": workers, "files": state["total"], "imported": state["imported"], "failed": state["failed"],
                "chunk_seconds": state["chunk_seconds"], "index_seconds": state["index_seconds"],
                "images_per_second": round(state["total"] / state["chunk_seconds"], 2), "load_at_start": load}
    finally:
        stack.stop()


def job_id(output: str) -> int:
    return int(output.split("Import job ", 1)[1].split(":", 1)[0])


def wait(stack: Stack, pk: int, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stack.check_alive()
        state = json.loads(stack.manage("shell", "-c", STATE.format(pk=pk)).strip().splitlines()[-1])
        if state["status"] in ("done", "failed"):
            return state
        time.sleep(3)
    raise TimeoutError(f"import job {pk} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/cub100")
    parser.add_argument("--every", type=int, default=10, help="import every N-th photo (1: all 5,902)")
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refind_import")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/5")
    args = parser.parse_args()
    source, warmup = Path("/tmp/refind-import-src"), Path("/tmp/refind-import-warmup")
    copy_subset(args.dataset, source, args.every)
    copy_subset(args.dataset, warmup, 997, offset=5)  # 6 photos the measured import does not have
    results = [run(workers, args, source, warmup) for workers in (1, 2)]
    report = {"runs": results, "ratio_2_over_1": round(results[1]["images_per_second"]
                                                       / results[0]["images_per_second"], 2),
              "cpus": os.cpu_count()}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
