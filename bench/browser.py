"""Browser timings and the relevance cutoff (issue 14), on the demo gallery and on a CUB-100 subset.

For each gallery a fresh deployment (bench/stack.py: gunicorn on 127.0.0.1, SQLite, DEBUG off) is imported,
then:
- **cutoff**: queries searched over HTTP (`POST /api/v1/search/`, top 20): in-domain queries (images of the
  gallery's labels that are not in the gallery) and out-of-domain ones (the other gallery's images, which
  have no match here). A result is relevant when its label equals the query's. Reported: the similarity
  threshold that best separates relevant from irrelevant results (max F1), the share of out-of-domain
  queries whose best score falls below each threshold, and of in-domain queries whose first result is
  relevant *and* above it.
- **browser timings** (Playwright, Debian's chromium, 1280 px): time from choosing a file to seeing the
  results (the grid's first thumbnail decoded), and from clicking a result to seeing it large (the viewer's
  image decoded); median and p90 of `--runs` queries.

    python -m bench.browser --dataset ../shared/datasets/cub100 [--species 30 --per-species 10 --runs 20]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench.stack import Stack

CHROMIUM = "/usr/bin/chromium"


def _post_search(base_url: str, path: Path, k: int = 20) -> list[dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\n{k}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{path.name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + \
        f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(base_url + "/api/v1/search/", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.load(response)["results"]


def _cutoff_report(in_domain: list[tuple[str, list[dict]]], out_domain: list[list[dict]]) -> dict:
    pairs = [(hit["score"], hit["label"] == label) for label, hits in in_domain for hit in hits]
    best = (0.0, 0.0)
    for threshold in sorted({round(score, 2) for score, _ in pairs}):
        tp = sum(1 for s, ok in pairs if ok and s >= threshold)
        fp = sum(1 for s, ok in pairs if not ok and s >= threshold)
        fn = sum(1 for s, ok in pairs if ok and s < threshold)
        f1 = 2 * tp / max(1, 2 * tp + fp + fn)
        best = max(best, (f1, threshold))
    table = {}
    for threshold in (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, best[1]):
        table[f"{threshold:.2f}"] = {
            "ood_says_no_match": sum(hits[0]["score"] < threshold for hits in out_domain) / max(1, len(out_domain)),
            "in_domain_top1_relevant_and_kept": sum(hits[0]["label"] == label and hits[0]["score"] >= threshold
                                                    for label, hits in in_domain) / max(1, len(in_domain)),
        }
    return {"best_f1_threshold": best[1], "best_f1": round(best[0], 3), "by_threshold": table,
            "relevant_score_median": statistics.median([s for s, ok in pairs if ok] or [0]),
            "irrelevant_score_median": statistics.median([s for s, ok in pairs if not ok] or [0]),
            "ood_top1_median": statistics.median([hits[0]["score"] for hits in out_domain] or [0])}


def _browser_timings(base_url: str, queries: list[Path], runs: int) -> dict:
    from playwright.sync_api import sync_playwright

    to_results, to_large = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path in queries[:runs]:
            page.goto(base_url + "/")
            start = time.perf_counter()
            page.set_input_files("#image-input", str(path))
            page.wait_for_selector(f"text=Results for {path.name}")
            _wait(page, "(() => { const i = document.querySelector('#result-grid .hit img'); "
                        "return i && i.complete && i.naturalWidth > 0; })()")
            to_results.append(time.perf_counter() - start)
            start = time.perf_counter()
            page.locator("#result-grid .thumb").first.click()
            _wait(page, "(() => { const d = document.querySelector('#viewer'); const i = d && d.querySelector('img');"
                        " return d.open && i && i.complete && i.naturalWidth > 0; })()")
            to_large.append(time.perf_counter() - start)
            page.keyboard.press("Escape")
        browser.close()

    def summary(values: list[float]) -> dict:
        ordered = sorted(values)
        return {"median_ms": round(1000 * statistics.median(ordered)),
                "p90_ms": round(1000 * ordered[int(0.9 * (len(ordered) - 1))]), "n": len(ordered)}

    return {"choose_file_to_results": summary(to_results), "click_to_large": summary(to_large)}


def _wait(page, expression: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.005)


def _cub_subset(dataset: Path, target: Path, species: int, per_species: int, queries_per_species: int,
                seed: int) -> list[tuple[str, Path]]:
    """Copy `per_species` photos of `species` species into target/<species>/ (outside the repository); return
    (label, path) of `queries_per_species` other photos of each, which are not imported."""
    rng = random.Random(seed)
    folders = sorted(p for p in (dataset / "images").iterdir() if p.is_dir())
    queries = []
    for folder in rng.sample(folders, species):
        photos = sorted(folder.glob("*.jpg"))
        rng.shuffle(photos)
        (target / folder.name).mkdir(parents=True)
        for photo in photos[:per_species]:
            shutil.copy(photo, target / folder.name / photo.name)
        queries += [(folder.name, photo) for photo in photos[per_species:per_species + queries_per_species]]
    return queries


def _demo(folder: Path, per_class: int, seed: int) -> list[tuple[str, Path]]:
    from webapp.gallery.demo import generate_demo_gallery

    generate_demo_gallery(folder, per_class=per_class, seed=seed)
    return [(path.parent.name, path) for path in sorted(folder.glob("*/*.jpg"))]


def run_gallery(name: str, gallery: Path, in_domain: list[tuple[str, Path]], out_domain: list[Path], runs: int,
                work: Path) -> dict:
    stack = Stack(work / f"data-{name}", f"sqlite:///{work / f'{name}.sqlite3'}", "filesystem://",
                  {"DJANGO_DEBUG": "0", "REFIND_THROTTLE_SEARCH": "100000/min"})
    try:
        started = time.perf_counter()
        stack.manage("migrate", "--noinput", "-v0")
        stack.manage("import_images", str(gallery), "--labels-from-dirs")
        imported = time.perf_counter() - started
        stack.start_web(workers=1, threads=4)
        stack.wait_ready()
        cutoff = _cutoff_report([(label, _post_search(stack.base_url, path)) for label, path in in_domain],
                                [_post_search(stack.base_url, path) for path in out_domain])
        timings = _browser_timings(stack.base_url, [path for _, path in in_domain], runs)
        return {"gallery": name, "images": sum(1 for _ in gallery.glob("*/*")), "import_s": round(imported, 1),
                "in_domain_queries": len(in_domain), "out_of_domain_queries": len(out_domain),
                "cutoff": cutoff, "browser": timings}
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True, help="CUB-100 (folder with images/<species>/)")
    parser.add_argument("--species", type=int, default=30)
    parser.add_argument("--per-species", type=int, default=10)
    parser.add_argument("--queries-per-species", type=int, default=2)
    parser.add_argument("--demo-per-class", type=int, default=25)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="refind-bench-browser-") as tmp:
        work = Path(tmp)
        demo_gallery = work / "demo"
        _demo(demo_gallery, args.demo_per_class, args.seed)
        demo_queries = [(label, path) for label, path in _demo(work / "demo-queries", 2, args.seed + 1)]
        cub_gallery = work / "cub"
        cub_queries = _cub_subset(args.dataset, cub_gallery, args.species, args.per_species,
                                  args.queries_per_species, args.seed)
        random.Random(args.seed).shuffle(demo_queries)
        random.Random(args.seed).shuffle(cub_queries)
        results = [
            run_gallery("demo", demo_gallery, demo_queries, [p for _, p in cub_queries[:20]], args.runs, work),
            run_gallery("cub", cub_gallery, cub_queries, [p for _, p in demo_queries[:20]], args.runs, work),
        ]
    print(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "results": results}, indent=2))
    print(f"load average after: {os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
