"""App learning benchmark: the Training-library protocol run through the whole app, over HTTP, with real workers.

A fresh deployment (bench/stack.py: gunicorn on 127.0.0.1, Celery workers for `default` and `training`,
beat for housekeeping; PostgreSQL and Redis) imports the CUB-100 gallery, splits it per species 50/50
(seed 0; the held-out half are the evaluation queries), and evaluates the pretrained version. Then
`manage.py simulate_feedback` (HTTP only) searches with feedback-half photos and clicks same-species
results, in chunks, until the Triplet table holds each budget (default 500, 1,000, 5,000 rows). At each
budget the benchmark waits until the online learner (OAHU, debounced, in the worker) has consumed every
triplet and its last candidate is promoted or rejected, and evaluates the **active** version
(`manage.py evaluate --version V`: Recall@K of the held-out half against the whole gallery). Batch mode
at the same budget: `manage.py retrain --mode batch --loss abtl --data triplets --wait` on the same
triplets, evaluated the same way; if the guard promoted it, the online version is re-activated so that the
click stream stays the online learner's (as in bench/learning.py, where batch losses train on OAHU's stream).

Leak-free since issue 12: `split_gallery` takes the held-out half out of the index, so the simulated person
never sees or clicks it, and `evaluate` searches each held-out image as an upload is, against the feedback
half. Budgets count triplets (`--budget-unit triplets`, the old protocol) or clicks (`--budget-unit clicks`,
judgements, held-out impressions included). At the end: the guard's decisions against the full evaluation
(every candidate's paired evidence is on all held-out queries) and a plot of R@1 against clicks.

python -m bench.app_learning --dataset ../shared/datasets/cub100 [--budgets 500,1000,5000] [--budget-unit clicks]
python -m bench.app_learning --plot-from RESULTS.json --plot docs/img/app_learning_clicks.png
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

from bench.recall_plot import save_recall_against_clicks
from bench.stack import ROOT, Stack, ensure_postgres_database

KS = (1, 2, 4, 8, 16, 32)


def library_steps(triplets: int) -> int:
    """bench/learning.py's batch schedule: 3 epochs of 64-triplet batches, clipped to 60-300 steps."""
    return max(60, min(300, math.ceil(3 * triplets / 64)))


class Orchestrator:
    def __init__(self, stack: Stack, args) -> None:
        self.stack, self.args = stack, args
        self.chunk = 0
        self.rows: list[dict] = []
        self.log: list[str] = []
        self.guard: dict = {}

    def say(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        self.log.append(line)
        print(line, flush=True)

    # --- database views (the benchmark reads the app's state; it never writes feedback itself) ---
    @staticmethod
    def triplets() -> int:
        from webapp.feedback.models import Triplet

        return Triplet.objects.count()

    @staticmethod
    def active_version() -> int:
        from webapp.gallery.models import ModelVersion

        return ModelVersion.objects.get(is_active=True).pk

    def evaluate(self, version: int) -> dict:
        out = self.stack.manage("evaluate", "--version", str(version))
        labelled = json.loads(out[out.index("{"):])["labelled"]  # FAISS may print a warning first
        return {"version": version, **{f"R@{k}": 100 * labelled[f"recall@{k}"] for k in KS},
                "MAP@R": 100 * labelled["map@r"], "NMI": 100 * labelled["nmi"],
                "queries": labelled["queries"], "gallery": labelled["gallery"], "protocol": labelled.get("protocol")}

    def served(self) -> dict:
        """Recall@K of the lists the active index serves (αDBA, click memory, removals: `evaluate --served`)."""
        out = self.stack.manage("evaluate", "--served")
        served = json.loads(out[out.index("{"):])["served"] or {}
        return {f"served R@{k}": 100 * served[f"recall@{k}"] for k in KS if f"recall@{k}" in served}

    def amount(self) -> int:
        """What the budgets count: triplets, or clicks (positive judgements, held-out impressions included)."""
        from webapp.feedback.models import Judgement

        if self.args.budget_unit == "triplets":
            return self.triplets()
        return Judgement.objects.exclude(kind=Judgement.Kind.DISSIMILAR).count()

    # --- feedback ---
    def simulate_until(self, budget: int) -> dict:
        """simulate_feedback in chunks (a fresh seed each) until `budget` triplets or clicks exist."""
        started, queries, per_query, last_chunk = time.monotonic(), 0, None, 5
        while (count := self.amount()) < budget:
            self.stack.check_alive()
            remaining = budget - count
            # pretrained results are mostly right at first: few skip-above triplets per query, so grow slowly
            wanted = 10 if per_query is None else math.ceil(remaining / max(per_query, 0.1))
            chunk = max(1, min(wanted, 2 * last_chunk, 100))
            last_chunk = chunk
            self.chunk += 1
            out = self.stack.manage(
                "simulate_feedback", "--queries", str(chunk), "--clicks-per-query", str(self.args.clicks_per_query),
                "--noise", str(self.args.noise), "--seed", str(self.args.seed * 100_000 + self.chunk),
                "--base-url", self.stack.base_url, timeout=1800).strip()
            queries += chunk
            made = self.amount() - count
            per_query = made / chunk if per_query is None else 0.5 * per_query + 0.5 * made / chunk
            self.say(f"simulate_feedback --queries {chunk}: {out} ({self.args.budget_unit}: {count + made})")
        return {"searches": queries, "simulate_s": time.monotonic() - started}

    def wait_for_online(self, timeout: float) -> dict:
        """Until the OAHU cursor has consumed every triplet and no run is queued or running."""
        from webapp.feedback.consumer import open_cursor
        from webapp.feedback.models import Triplet
        from webapp.learning.models import TrainingRun

        started = time.monotonic()
        while time.monotonic() - started < timeout:
            self.stack.check_alive()
            top = Triplet.objects.order_by("-id").values_list("id", flat=True).first() or 0
            busy = TrainingRun.objects.exclude(status__in=TrainingRun.FINISHED).exists()
            if open_cursor("oahu").watermark >= top and not busy:
                return {"catch_up_s": time.monotonic() - started}
            time.sleep(1)
        raise TimeoutError(f"The online learner did not catch up within {timeout:.0f} s.")

    def online_state(self) -> dict:
        from webapp.feedback.models import Judgement, Triplet
        from webapp.gallery.models import ModelVersion
        from webapp.learning.models import TrainingRun

        oahu = ModelVersion.objects.filter(head_kind="oahu")
        runs = TrainingRun.objects.filter(mode="oahu")
        return {"clicks": Judgement.objects.count(),
                "anchors": Triplet.objects.values("anchor_id").distinct().count(),
                "oahu_versions": oahu.count(), "promoted": oahu.filter(promotion="promoted").count(),
                "rejected": oahu.filter(promotion="rejected").count(),
                "runs": runs.count(), "failed_runs": runs.filter(status="failed").count(),
                "latest_candidate": oahu.order_by("-id").values_list("id", flat=True).first()}

    def batch(self, triplets: int, loss: str, data: str) -> dict:
        """Retrain on every (non-held-out) triplet or click; steps as in bench/learning.py."""
        from webapp.feedback.models import Judgement, Triplet
        from webapp.gallery.models import ModelVersion
        from webapp.learning.models import TrainingRun
        from webapp.learning.promotion import rollback

        members = (set(Triplet.objects.values_list("anchor_id", flat=True))
                   | set(Triplet.objects.values_list("positive_id", flat=True))
                   | set(Triplet.objects.values_list("negative_id", flat=True)))
        if data == "clicks":
            members |= set(Judgement.objects.values_list("image_id", flat=True))
            triplets = max(triplets, Judgement.objects.count())
        steps = library_steps(triplets)
        epochs = max(1, math.ceil(steps * 64 / len(members)))  # the app runs epochs x (distinct images // batch)
        online_active = ModelVersion.objects.get(is_active=True)
        started = time.monotonic()
        out = self.stack.manage("retrain", "--mode", "batch", "--loss", loss, "--data", data,
                                "--batch-size", "64", "--lr", "1e-4", "--epochs", str(epochs), "--wait", timeout=3600)
        run = TrainingRun.objects.filter(mode="batch").order_by("-id").first()
        self.say(f"retrain --mode batch --loss {loss} --data {data} --epochs {epochs}: "
                 f"{out.strip().splitlines()[-1]}")
        result = {"batch_s": time.monotonic() - started, "epochs": epochs, "members": len(members),
                  "status": run.status, "note": run.message, "candidate": run.candidate_id,
                  "steps": (run.candidate.config or {}).get("steps") if run.candidate else None}
        if ModelVersion.objects.get(is_active=True).pk != online_active.pk:
            rollback(online_active)
            self.say(f"re-activated the online version v{online_active.pk} (the click stream stays OAHU's)")
        return result

    def guard_agreement(self) -> dict:
        """Every guarded candidate's decision against the full evaluation: the evidence is on every held-out
        query (REFIND_GUARD_MAX_QUERIES ≥ the held-out half), so its difference *is* the full R@1 difference."""
        from webapp.gallery.models import ModelVersion

        decided = [(v.pk, v.metrics["promotion_evidence"]) for v in ModelVersion.objects.order_by("id")
                   if (v.metrics or {}).get("promotion_evidence")]
        clear = [(pk, e) for pk, e in decided if abs(e["difference"]) >= 0.5]
        wrong = [pk for pk, e in clear if e["promote"] != (e["difference"] > 0)]
        return {"candidates": len(decided), "promoted": sum(e["promote"] for _, e in decided),
                "clear": len(clear), "disagree": wrong,
                "queries": sorted({e["queries"] for _, e in decided})}

    # --- the benchmark ---
    def run(self) -> None:
        pretrained = self.active_version()
        self.rows.append({"method": "pretrained", "budget": 0, "triplets": 0, "clicks": 0,
                          **self.evaluate(pretrained), **self.served()})
        self.say(f"pretrained v{pretrained}: R@1 {self.rows[-1]['R@1']:.2f}, "
                 f"served R@1 {self.rows[-1].get('served R@1', float('nan')):.2f}")
        for budget in self.args.budgets:
            sim = self.simulate_until(budget)
            caught = self.wait_for_online(self.args.catch_up_timeout)
            count, state = self.triplets(), {**self.online_state(), "guard": self.guard_agreement()}
            active = self.active_version()
            row = {"method": "oahu (active)", "budget": budget, "triplets": count, **sim, **caught, **state,
                   **self.evaluate(active), **self.served()}
            self.rows.append(row)
            self.say(f"{budget}: {count} triplets, active v{active}: R@1 {row['R@1']:.2f}, served R@1 "
                     f"{row.get('served R@1', float('nan')):.2f} (click memory and αDBA included) ({state})")
            latest = state["latest_candidate"]
            if latest and latest != active:
                self.rows.append({"method": "oahu (latest candidate, rejected)", "budget": budget,
                                  "triplets": count, "clicks": state["clicks"], **self.evaluate(latest)})
            for spec in self.args.batch if "batch" in self.args.modes else []:
                loss, data = spec.split(":")
                batch = self.batch(count, loss, data)
                if batch["candidate"]:
                    self.rows.append({"method": f"batch {loss} on {data}", "budget": budget, "triplets": count,
                                      "clicks": state["clicks"], **batch, **self.evaluate(batch["candidate"])})
                    self.say(f"{budget}: batch {spec} v{batch['candidate']} R@1 {self.rows[-1]['R@1']:.2f} "
                             f"({batch['status']}: {batch['note']})")
        self.guard = self.guard_agreement()
        self.say(f"guard decisions vs the full evaluation: {self.guard}")


def print_table(rows: list[dict]) -> None:
    print(f"\n{'method':<36}{'budget':>7}{'triplets':>9}" + "".join(f"{'R@' + str(k):>7}" for k in KS)
          + f"{'MAP@R':>7}{'NMI':>7}{'version':>8}")
    for row in rows:
        print(f"{row['method']:<36}{row['budget']:>7}{row['triplets']:>9}"
              + "".join(f"{row[f'R@{k}']:>7.2f}" for k in KS)
              + f"{row['MAP@R']:>7.2f}{row['NMI']:>7.2f}{'v' + str(row['version']):>8}")


def plot(rows: list[dict], path: Path, title: str = "") -> None:
    """R@1 against clicks per method, the zero-click figure dashed (docs/img)."""
    zero = next((r["R@1"] for r in rows if r["method"] == "pretrained"), None)
    series = {}
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "pretrained"):
        points = [(r["clicks"], r["R@1"]) for r in rows if r["method"] == method and "clicks" in r]
        if zero is not None and method.startswith("oahu (active"):
            points = [(0, zero), *points]
        series[method] = points
    served = [(r["clicks"], r["served R@1"]) for r in rows if "served R@1" in r]
    if served:
        series["served lists (active version + click memory + αDBA)"] = served
    save_recall_against_clicks(series, zero, path, title, ylabel="Recall@1 (%), held-out queries")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=ROOT.parent / "shared/datasets/cub100")
    parser.add_argument("--data-dir", type=Path, help="default: a new folder under /tmp")
    parser.add_argument("--database-url", default="postgres://postgres@127.0.0.1:5432/refind_app_learning",
                        help="PostgreSQL database, dropped and created afresh")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--budgets", default="500,1000,5000")
    parser.add_argument("--modes", default="oahu,batch", help="oahu, or oahu,batch")
    parser.add_argument("--batch", default="abtl:triplets,multi_similarity:clicks",
                        help="batch runs at each budget, LOSS:DATA (data: triplets, clicks, ...), comma-separated")
    parser.add_argument("--clicks-per-query", type=int, default=3)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--catch-up-timeout", type=float, default=1800.0)
    parser.add_argument("--out", type=Path, help="JSON results (default: <data dir>/app_learning.json)")
    parser.add_argument("--budget-unit", choices=("triplets", "clicks"), default="clicks")
    parser.add_argument("--plot", type=Path, help="PNG of R@1 against clicks (e.g. docs/img/app_learning_clicks.png)")
    parser.add_argument("--plot-from", type=Path, help="only draw --plot from an earlier run's JSON")
    parser.add_argument("--reuse", action="store_true",
                        help="rerun on --data-dir/--database-url that hold an imported gallery and no feedback yet")
    args = parser.parse_args()
    if args.plot_from:
        if not args.plot:
            parser.error("--plot-from needs --plot")
        saved = json.loads(args.plot_from.read_text())
        plot(saved["rows"], args.plot, f"app_learning, {saved['args'].get('clicks_per_query')} clicks per query, "
                                       f"noise {saved['args'].get('noise')}")
        return
    try:
        args.budgets = sorted({int(b) for b in args.budgets.split(",")})
    except ValueError:
        parser.error("--budgets: comma-separated whole numbers, e.g. 500,1000,5000")
    args.modes = set(args.modes.split(","))
    args.batch = [spec for spec in args.batch.split(",") if spec]
    if any(spec.count(":") != 1 for spec in args.batch):
        parser.error("--batch: LOSS:DATA specs, e.g. abtl:triplets,multi_similarity:clicks")
    if not args.budgets or args.budgets[0] < 1 or not args.modes <= {"oahu", "batch"} or "oahu" not in args.modes:
        parser.error("--budgets must be positive; --modes oahu or oahu,batch")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url must be a PostgreSQL URL (web, workers and beat write concurrently)")
    if args.reuse and not args.data_dir:
        parser.error("--reuse needs --data-dir")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="refind-app-learning-"))
    if not args.reuse and data_dir.exists() and any(p.name != "log" for p in data_dir.iterdir()):
        parser.error(f"{data_dir} is not empty: the benchmark starts from a fresh data dir (or pass --reuse)")

    ensure_postgres_database(args.database_url, fresh=not args.reuse)
    stack = Stack(data_dir, args.database_url, args.broker, {
        # the simulated person searches much faster than 120/min from one address
        "REFIND_THROTTLE_SEARCH": "1000000/min", "REFIND_THROTTLE_FEEDBACK": "1000000/min",
        "REFIND_HOUSEKEEPING_SECONDS": "5",  # picks up triplets that arrived while a run held the claim
    })
    os.environ.update(stack.env)
    import django

    django.setup()
    started = time.monotonic()
    stack.manage("migrate", "--noinput", "-v0")
    print(stack.manage("import_images", str(args.dataset / "images"), "--labels-from-dirs", "-v0").strip())
    print(stack.manage("split_gallery", "--seed", "0").strip())
    print(f"gallery imported and split in {time.monotonic() - started:.0f} s; data dir {data_dir}")
    from webapp.feedback.models import Judgement

    if Judgement.objects.exists():
        raise SystemExit("This database already holds feedback: start from a fresh one (drop --reuse).")
    orchestrator = Orchestrator(stack, args)
    try:
        stack.start_worker("default")
        stack.start_worker("training")
        stack.start_beat()
        stack.start_web(workers=2)
        stack.wait_ready()
        orchestrator.run()
    finally:
        stack.stop()
        out = args.out or data_dir / "app_learning.json"
        out.write_text(json.dumps({"args": {k: sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path)
                                            else v for k, v in vars(args).items()},
                                   "rows": orchestrator.rows, "guard": orchestrator.guard, "log": orchestrator.log},
                                  indent=2, default=str))
        print_table(orchestrator.rows)
        if args.plot and orchestrator.rows:
            plot(orchestrator.rows, args.plot, f"app_learning, {args.clicks_per_query} clicks per query, "
                                               f"noise {args.noise}")
        print(f"JSON: {out}; total {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
