"""Load test: N simulated people search and click against gunicorn for T seconds, then again during a retraining.

The deployment (bench/stack.py): gunicorn bound to 127.0.0.1, PostgreSQL (its own database),
Celery workers for the `default` and `training` queues on Redis, the CUB-100 gallery imported once into
a data dir outside the repository (resumable; reused when already there). Each user has its own cookie
session and loops: upload a query photo (`POST /api/v1/search/`, k=20; a unique JPEG comment makes
every upload new bytes, so each search stores, decodes and embeds its query like a fresh photo), click
a result with the query's species (`POST /api/v1/feedback/`), open the clicked image (its `image_url`),
then wait `--think` seconds. Phase 1 is quiet; in phase 2 a batch retraining starts after a few
seconds and its candidate is promoted (the index swap), and the phase lasts until the swap has been
seen by the users. Errors are every non-2xx answer and every exception (timeouts included).

python -m bench.load --dataset ../shared/datasets/cub100 [--users 8] [--seconds 60] [--think 0.5]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import multiprocessing
import random
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.stack import PYTHON, ROOT, Stack, ensure_postgres_database

ENDPOINTS = ("page", "search", "feedback", "image")


@dataclass
class Sample:
    phase: str
    endpoint: str
    start: float  # seconds since the phase began
    seconds: float
    error: str = ""


def unique_jpeg(jpeg: bytes, tag: str) -> bytes:
    """The same picture as new bytes: a JPEG comment segment (COM) inserted after the SOI marker."""
    comment = f"refind-load {tag}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


class User(threading.Thread):
    """One person with a cookie session: search, click a same-species result, open it, think."""

    def __init__(self, number: int, base: str, photos: list[tuple[str, bytes]], until: threading.Event,
                 record: list[Sample], phase: str, t0: float, think: float, versions: dict) -> None:
        super().__init__(daemon=True)
        self.number, self.base, self.photos, self.until = number, base, photos, until
        self.record, self.phase, self.t0, self.think, self.versions = record, phase, t0, think, versions
        self.rng = random.Random(f"{phase}-{number}")
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def csrf_token(self) -> str | None:
        """The session's CSRF cookie (set by the first page, as a browser gets it), sent back on every write."""
        return next((cookie.value for cookie in self.cookies if cookie.name == "csrftoken"), None)

    def call(self, endpoint: str, url: str, body: bytes | None = None, content_type: str | None = None):
        request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
        if content_type:
            request.add_header("Content-Type", content_type)
        if body is not None and (token := self.csrf_token()):
            request.add_header("X-CSRFToken", token)
        started = time.perf_counter()
        error, payload = "", None
        try:
            with self.opener.open(request, timeout=60) as response:
                payload = response.read()
        except urllib.error.HTTPError as exc:
            error = f"HTTP {exc.code}: {exc.read()[:200]!r}"
        except OSError as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.record.append(Sample(self.phase, endpoint, started - self.t0, time.perf_counter() - started, error))
        return payload

    def run(self) -> None:
        self.call("page", f"{self.base}/")  # the search page, as a person opens it first: the CSRF cookie
        while not self.until.is_set():
            label, jpeg = self.photos[self.rng.randrange(len(self.photos))]
            boundary = uuid.uuid4().hex
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"q.jpg\"\r\n"
                    "Content-Type: image/jpeg\r\n\r\n").encode()
            body += unique_jpeg(jpeg, uuid.uuid4().hex) + f"\r\n--{boundary}--\r\n".encode()
            found = self.call("search", f"{self.base}/api/v1/search/", body,
                              f"multipart/form-data; boundary={boundary}")
            if found is None:
                time.sleep(self.think)
                continue
            found = json.loads(found)
            self.versions.setdefault(found["index_version"], started := time.perf_counter() - self.t0)
            self.versions[found["index_version"]] = min(self.versions[found["index_version"]], started)
            results = found["results"]
            same = [r for r in results if r["label"] == label] or results
            hit = same[0] if self.rng.random() < 0.7 else self.rng.choice(same)
            click = json.dumps({"query_id": found["query_id"], "impression_id": found["impression_id"],
                                "image_id": hit["image_id"], "judgement": "click"}).encode()
            self.call("feedback", f"{self.base}/api/v1/feedback/", click, "application/json")
            self.call("image", hit["image_url"])
            time.sleep(self.think)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000 if values else float("nan")


def summarise(samples: list[Sample], seconds: float) -> dict:
    """Per endpoint and overall: requests, requests/s, p50/p95/p99 in ms, errors."""
    table = {}
    for endpoint in (*ENDPOINTS, "all"):
        rows = [s for s in samples if endpoint in ("all", s.endpoint)]
        ok = [s.seconds for s in rows if not s.error]  # latencies of answered requests; errors are counted
        table[endpoint] = {"requests": len(rows), "rps": len(rows) / seconds if seconds else 0.0,
                           "p50_ms": percentile(ok, 50), "p95_ms": percentile(ok, 95), "p99_ms": percentile(ok, 99),
                           "errors": sum(1 for s in rows if s.error)}
    return table


def print_table(title: str, table: dict, seconds: float) -> None:
    print(f"\n{title} ({seconds:.0f} s)")
    print(f"{'endpoint':<10}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for endpoint, row in table.items():
        print(f"{endpoint:<10}{row['requests']:>9}{row['rps']:>8.2f}{row['p50_ms']:>9.0f}{row['p95_ms']:>9.0f}"
              f"{row['p99_ms']:>9.0f}{row['errors']:>8}")


def load_photos(dataset: Path, count: int, seed: int) -> list[tuple[str, bytes]]:
    """`count` gallery photos (label = species folder), chosen with a seed."""
    files = sorted((dataset / "images").glob("*/*.jpg"))
    if not files:
        raise SystemExit(f"No JPEGs under {dataset / 'images'}/<species>/.")
    chosen = random.Random(seed).sample(files, min(count, len(files)))
    return [(f.parent.name, f.read_bytes()) for f in chosen]


def _user_process(number: int, base: str, photos, stop, out, phase: str, t0: float, think: float) -> None:
    """One user alone in its own process (its interpreter lock shared with nobody); its samples go to `out`."""
    samples: list[Sample] = []
    User(number, base, photos, stop, samples, phase, t0, think, {}).run()
    out.put(samples)


def run_phase_in_processes(name: str, stack: Stack, args, photos) -> tuple[list[Sample], float, dict]:
    """As run_phase, but each user is a process of its own, as real users are separate browsers: with threads,
    a user's clock also counts the time its thread waits for the one interpreter lock while another user
    parses a search's JSON. Index versions are not followed (phase 2 of this bench uses threads)."""
    context = multiprocessing.get_context("fork")
    stop, out = context.Event(), context.Queue()
    t0 = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in the children
    users = [context.Process(target=_user_process, args=(n, stack.base_url, photos, stop, out, name, t0, args.think),
                             daemon=True) for n in range(args.users)]
    for user in users:
        user.start()
    stop.wait(args.seconds)
    stop.set()
    samples = [sample for _ in users for sample in out.get(timeout=120)]
    for user in users:
        user.join(timeout=30)
    return samples, time.perf_counter() - t0, {}


def run_phase(name: str, stack: Stack, args, photos, during=None) -> tuple[list[Sample], float, dict]:
    """Run the users for `args.seconds` (or until `during` says stop); returns samples, duration, seen versions."""
    samples: list[Sample] = []
    stop = threading.Event()
    versions: dict = {}
    t0 = time.perf_counter()
    users = [User(n, stack.base_url, photos, stop, samples, name, t0, args.think, versions) for n in range(args.users)]
    for user in users:
        user.start()
        time.sleep(args.think / args.users)  # staggered start
    try:
        if during is None:
            stop.wait(args.seconds)
        else:
            during(t0, versions)
    finally:
        stop.set()
        for user in users:
            user.join(timeout=90)
    return samples, time.perf_counter() - t0, versions


def retrain_during_load(stack: Stack, args, timeline: dict):
    """Phase 2's driver: start a batch retraining after 5 s, keep the load on until users see the new index."""

    def drive(t0: float, versions: dict) -> None:
        time.sleep(5)
        before = set(versions)
        timeline["retrain_started_s"] = time.perf_counter() - t0
        command = [PYTHON, "manage.py", "retrain", "--mode", "batch", "--loss", args.loss, "--epochs",
                   str(args.epochs), "--wait"]
        with open(stack.log_dir / "retrain.log", "wb") as log:
            retrain = subprocess.Popen(command, cwd=ROOT, env=stack.env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.perf_counter() + args.seconds + args.max_extra
            new: set = set()
            while time.perf_counter() < deadline:
                stack.check_alive()
                if retrain.poll() is not None and "retrain_finished_s" not in timeline:
                    timeline["retrain_finished_s"] = time.perf_counter() - t0
                    timeline["retrain_exit"] = retrain.returncode
                new = set(versions) - before
                if new and "swap_seen_s" not in timeline:
                    timeline["swap_seen_s"] = min(versions[v] for v in new)
                    timeline["new_index_versions"] = sorted(new)
                elapsed = time.perf_counter() - t0
                if elapsed >= args.seconds and "swap_seen_s" in timeline and elapsed >= timeline["swap_seen_s"] + 5:
                    break
                time.sleep(0.2)
            if retrain.poll() is None:
                retrain.terminate()
                retrain.wait(timeout=30)
                timeline["retrain_exit"] = "still running at the deadline (terminated)"
        timeline["retrain_output"] = (stack.log_dir / "retrain.log").read_text()[-1500:]

    return drive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/cub100")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/refind-load"))
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refind_load")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each phase")
    parser.add_argument("--think", type=float, default=0.5, help="pause of a user after each search + click")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--loss", default="multi_similarity", help="loss of the retraining in phase 2")
    parser.add_argument("--epochs", type=int, default=20, help="epochs of the retraining in phase 2")
    parser.add_argument("--max-extra", type=float, default=600.0, help="phase 2 may run this long past --seconds")
    parser.add_argument("--out", type=Path, help="JSON results (default: <data dir>/load.json)")
    args = parser.parse_args()
    if not 1 <= args.users <= 64 or args.seconds <= 0 or args.think < 0:
        parser.error("need 1 <= --users <= 64, --seconds > 0, --think >= 0")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL (several processes write concurrently)")

    ensure_postgres_database(args.database_url, fresh=False)
    stack = Stack(args.data_dir, args.database_url, args.broker, {
        # one client address for all users: lift the per-address limits, the test measures capacity
        "REFIND_THROTTLE_SEARCH": "1000000/min", "REFIND_THROTTLE_FEEDBACK": "1000000/min",
        # no online updates: phase 1 is quiet; phase 2's retraining is started explicitly
        "REFIND_ONLINE_LEARNING": "0", "REFIND_PROMOTION_GUARD": "off",
    })
    started = time.perf_counter()
    stack.manage("migrate", "--noinput", "-v0")
    print(stack.manage("import_images", str(args.dataset / "images"), "--labels-from-dirs", "-v0").strip())
    print(f"gallery ready in {time.perf_counter() - started:.0f} s")
    photos = load_photos(args.dataset, 500, seed=0)
    try:
        report = measure(stack, args, photos)
    finally:
        stack.stop()
    out = args.out or args.data_dir / "load.json"
    out.write_text(json.dumps(report, indent=2))
    verdict = report["verdict"]
    print(f"\nerrors: {verdict['errors']} (target 0) -> {'PASS' if verdict['errors'] == 0 else 'FAIL'}")
    print(f"p95 retraining / quiet: all {verdict['p95_ratio_all']:.2f}, search {verdict['p95_ratio_search']:.2f} "
          f"(target <= 2) -> {'PASS' if verdict['p95_ratio_all'] <= 2 else 'FAIL'}; "
          f"index swap seen by users: {verdict['swap_seen']}")
    for sample in report["errors"][:10]:
        print("  error:", sample)
    print(f"JSON: {out}")
    raise SystemExit(0 if verdict["errors"] == 0 and verdict["swap_seen"] else 1)


def measure(stack: Stack, args, photos) -> dict:
    """Start web + workers, run both phases, return the report."""
    stack.start_worker("default")
    stack.start_worker("training")
    stack.start_web(workers=args.web_workers)
    stack.wait_ready()
    print(f"gunicorn -w {args.web_workers} at {stack.base_url}; {args.users} users, think {args.think} s")
    quiet, quiet_s, _ = run_phase("quiet", stack, args, photos)
    print_table("Phase 1: quiet", summarise(quiet, quiet_s), quiet_s)
    timeline: dict = {}
    loaded, loaded_s, _ = run_phase("retraining", stack, args, photos, retrain_during_load(stack, args, timeline))
    print_table("Phase 2: during a retraining and its index swap", summarise(loaded, loaded_s), loaded_s)
    start, end = timeline.get("retrain_started_s", 0.0), timeline.get("swap_seen_s", loaded_s)
    window = [s for s in loaded if start <= s.start <= end]
    print_table("Phase 2, only requests between the retrain command and the swap", summarise(window, end - start),
                end - start)
    print(f"\ntimeline: {json.dumps({k: v for k, v in timeline.items() if k != 'retrain_output'})}")
    print(timeline.get("retrain_output", "").strip())
    report = {"args": {k: str(v) for k, v in vars(args).items()}, "quiet": summarise(quiet, quiet_s),
              "retraining": summarise(loaded, loaded_s), "window": summarise(window, end - start),
              "timeline": timeline, "seconds": {"quiet": quiet_s, "retraining": loaded_s},
              "quiet_search_median_s": statistics.median(s.seconds for s in quiet if s.endpoint == "search"),
              "errors": [asdict(s) for s in quiet + loaded if s.error][:50]}
    report["verdict"] = {
        "errors": report["quiet"]["all"]["errors"] + report["retraining"]["all"]["errors"],
        "p95_ratio_all": report["retraining"]["all"]["p95_ms"] / report["quiet"]["all"]["p95_ms"],
        "p95_ratio_search": report["retraining"]["search"]["p95_ms"] / report["quiet"]["search"]["p95_ms"],
        "swap_seen": "swap_seen_s" in timeline,
    }
    return report

if __name__ == "__main__":
    main()
