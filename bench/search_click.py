"""Search and click under saturating load, per inference path, in one run (docs/benchmarks.md §11).

A lighter relative of bench/load.py for this 2-core machine: the same deployment (bench/stack.py:
gunicorn, PostgreSQL, a Celery worker for the `default` queue on Redis, which derives the triplets of
each click) over a smaller CUB-100 gallery (`--gallery` photos copied outside the repository and imported
once), and the same users (bench/load.py's `User`: upload a new JPEG, click a same-species result, open
it; no think time). For each inference path in `--paths` the web server is restarted with
``REFIND_INFERENCE`` set to it and loaded for `--seconds`; paths alternate over `--rounds` rounds so
that drifting machine load hits all of them alike. Reported per path: search p50/p95 and searches per
second (the saturating throughput), click p50/p95, and click p50 / search p50 in the same round.
A path may carry settings for its web server after colons, e.g. ``int8:REFIND_CLICK_MEMORY_BACKGROUND=0``
(the click memory applied in the click's own request, as before it moved to a background thread), and
``users=processes`` to run each user in a process of its own (real users are separate browsers; with the
default ``users=threads`` a user's timer also runs while its thread waits for the client's interpreter lock),
and ``web=4x2`` for gunicorn's workers x threads (default ``--web-workers`` x ``--web-threads``).

    nice -n 5 python -m bench.search_click --dataset ../shared/datasets/cub100 --paths torch,int8
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import time
from pathlib import Path

from bench.load import load_photos, run_phase, run_phase_in_processes, summarise
from bench.stack import ROOT, Stack, ensure_postgres_database

RESTART_GRACE_S = 30


def gallery_folder(dataset: Path, target: Path, count: int) -> Path:
    """`count` CUB-100 photos spread over all species, copied once into `target`/<species>/."""
    files = sorted((dataset / "images").glob("*/*.jpg"))
    step = max(1, len(files) // count)
    chosen = files[::step][:count]
    if target.exists() and sum(1 for _ in target.glob("*/*.jpg")) == len(chosen):
        return target
    shutil.rmtree(target, ignore_errors=True)
    for file in chosen:
        (target / file.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target / file.parent.name / file.name)
    return target


def _variant_settings(variant: str) -> tuple[str, dict[str, str]]:
    path, *settings = variant.split(":")
    return path, dict(setting.split("=", 1) for setting in settings)


def variant_env(variant: str) -> dict[str, str]:
    """The web server's settings for a variant `PATH[:NAME=VALUE...]` (`users=...` is the bench's own)."""
    path, extra = _variant_settings(variant)
    extra.pop("users", None)
    extra.pop("web", None)
    return {"REFIND_INFERENCE": path, **extra}


def web_shape(variant: str, workers: int, threads: int) -> tuple[int, int]:
    """`web=WxT`: gunicorn workers and threads for this variant (default: --web-workers x --web-threads)."""
    shape = _variant_settings(variant)[1].get("web")
    if shape is None:
        return workers, threads
    try:
        wanted_workers, wanted_threads = (int(part) for part in shape.split("x"))
    except ValueError:
        raise SystemExit(f"web={shape}: expected web=WORKERSxTHREADS, e.g. web=4x2") from None
    return wanted_workers, wanted_threads


def users_are_processes(variant: str) -> bool:
    """`users=processes`: each user its own process; default `threads` (one client process, as bench/load.py)."""
    kind = _variant_settings(variant)[1].get("users", "threads")
    if kind not in ("threads", "processes"):
        raise SystemExit(f"users={kind}: expected users=threads or users=processes")
    return kind == "processes"


def restart_web(stack: Stack, variant: str, workers: int, threads: int,
                previous: dict[str, str | None]) -> dict[str, str | None]:
    """(Re)start gunicorn with the variant's settings (the previous variant's undone: the stack's own values
    back); the worker and the database stay. Returns what to undo next time (name: value before, or None)."""
    web = stack.processes.pop("web", None)
    if web is not None and web.poll() is None:
        os.killpg(web.pid, signal.SIGTERM)
        web.wait(timeout=RESTART_GRACE_S)
    for name, value in previous.items():
        if value is None:
            stack.env.pop(name, None)
        else:
            stack.env[name] = value
    settings = variant_env(variant)
    undo = {name: stack.env.get(name) for name in settings}
    stack.env.update(settings)
    workers, threads = web_shape(variant, workers, threads)
    stack.start_web(workers=workers, threads=threads)
    stack.wait_ready()
    return undo


def warm_up(stack: Stack, args, photos) -> None:
    """A few seconds of load so that each web worker has loaded its model and index before measuring."""
    quick = argparse.Namespace(**{**vars(args), "seconds": args.warmup, "users": 2})
    run_phase("warmup", stack, quick, photos)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/cub100")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/refind-search-click"))
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refind_search_click")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--gallery", type=int, default=1000, help="CUB-100 photos in the gallery")
    parser.add_argument("--paths", default="torch,int8", help="inference paths to compare (first = reference)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="load per path and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--web-threads", type=int, default=4, help="gunicorn threads per worker (as the Dockerfile)")
    args = parser.parse_args()
    args.think = 0.0
    paths = [p for p in args.paths.split(",") if p]

    ensure_postgres_database(args.database_url, fresh=False)
    stack = Stack(args.data_dir, args.database_url, args.broker, {
        "REFIND_THROTTLE_SEARCH": "1000000/min", "REFIND_THROTTLE_FEEDBACK": "1000000/min",
        "REFIND_ONLINE_LEARNING": "0", "REFIND_INFERENCE": variant_env(paths[-1])["REFIND_INFERENCE"],
    })
    print(f"load average {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")
    started = time.perf_counter()
    stack.manage("migrate", "--noinput", "-v0")
    folder = gallery_folder(args.dataset, args.data_dir.parent / f"{args.data_dir.name}-photos", args.gallery)
    print(stack.manage("import_images", str(folder), "--labels-from-dirs", "-v0").strip())
    print(f"gallery of {args.gallery} ready in {time.perf_counter() - started:.0f} s")
    photos = load_photos(args.dataset, 300, seed=0)
    rows: dict[str, list[dict]] = {p: [] for p in paths}
    try:
        stack.start_worker("default")
        current: dict[str, str | None] = {}
        for round_number in range(args.rounds):
            order = paths if round_number % 2 == 0 else paths[::-1]
            for path in order:
                current = restart_web(stack, path, args.web_workers, args.web_threads, current)
                warm_up(stack, args, photos)
                phase = run_phase_in_processes if users_are_processes(path) else run_phase
                samples, seconds, _ = phase(f"{path}-{round_number}", stack, args, photos)
                table = summarise(samples, seconds)
                table["load"] = os.getloadavg()[0]
                rows[path].append(table)
                print(f"round {round_number + 1} {path}: search p50 {table['search']['p50_ms']:.0f} ms, "
                      f"{table['search']['rps']:.1f}/s; click p50 {table['feedback']['p50_ms']:.0f} ms; "
                      f"errors {table['all']['errors']}; load {table['load']:.1f}", flush=True)
    finally:
        stack.stop()
    report(rows, paths, args)


def report(rows: dict[str, list[dict]], paths: list[str], args) -> None:
    def median(path: str, endpoint: str, key: str) -> float:
        return statistics.median(t[endpoint][key] for t in rows[path])

    reference = paths[0]
    print(f"\n| path | search p50 ms | search p95 ms | searches/s | ratio to {reference} | click p50 ms | "
          "click p95 ms | click p50 / search p50 | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for path in paths:
        ratio = statistics.median(t["search"]["rps"] / r["search"]["rps"]
                                  for t, r in zip(rows[path], rows[reference], strict=True))
        click_share = statistics.median(t["feedback"]["p50_ms"] / t["search"]["p50_ms"] for t in rows[path])
        errors = sum(t["all"]["errors"] for t in rows[path])
        print(f"| {path} | {median(path, 'search', 'p50_ms'):.0f} | {median(path, 'search', 'p95_ms'):.0f} | "
              f"{median(path, 'search', 'rps'):.1f} | {ratio:.2f} | {median(path, 'feedback', 'p50_ms'):.0f} | "
              f"{median(path, 'feedback', 'p95_ms'):.0f} | {click_share:.2f} | {errors} |")
    out = args.data_dir / "search_click.json"
    out.write_text(json.dumps(rows, indent=1))
    print(f"\nJSON: {out}; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
