"""python manage.py retrain --mode oahu|batch [--loss NAME] [--epochs N] [--batch-size B] [--lr X] [--device D]
[--data D] [--seed S] [--backbone] [--wait]; parameters not given take their defaults (learning/parameters.py)."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from webapp.learning import claims
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import InvalidParameters, RunParameters
from webapp.learning.runs import start_run


class Command(BaseCommand):
    help = "Trigger a training run (a worker executes it); --wait follows it to the end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mode", required=True, choices=TrainingRun.Mode.values)
        parser.add_argument("--loss", help="default: REFIND_BATCH_LOSS")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--lr", type=float)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--device", help="auto | cpu | cuda; default: TRAINING_DEVICE")
        parser.add_argument("--data", help="both | triplets | labels | clicks")
        parser.add_argument("--seed", type=int)
        parser.add_argument("--backbone", action="store_true", help="batch mode: fine-tune the backbone too (GPU)")
        parser.add_argument("--wait", action="store_true", help="print progress until the run ends")

    def handle(self, *args, wait: bool, **options) -> None:
        given = {key: options[key] for key in ("mode", "loss", "epochs", "batch_size", "lr", "device", "data",
                                               "backbone", "seed") if options[key] is not None}
        try:
            run = start_run(RunParameters.parse(given))
        except InvalidParameters as exc:
            raise CommandError("; ".join(f"{field}: {' '.join(errors)}" for field, errors in exc.errors.items())) \
                from exc
        except claims.TrainingBusy as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Started run {run.pk} ({run.mode}).")
        if not wait:
            return
        last = None
        while True:
            run.refresh_from_db()
            line = f"{run.status} {run.progress:.0%} {run.message}"
            if line != last:
                self.stdout.write(line)
                last = line
            if run.status in TrainingRun.FINISHED:
                break
            time.sleep(1)
        if run.status == TrainingRun.Status.FAILED:
            raise CommandError(f"Run {run.pk} failed: {run.message}")
