"""python manage.py retrain --mode oahu|batch [--loss NAME] [--epochs N] [--batch-size B] [--lr X] [--backbone]
[--wait]"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from webapp.learning import claims
from webapp.learning.forms import RetrainForm
from webapp.learning.models import TrainingRun
from webapp.learning.runs import start_run


class Command(BaseCommand):
    help = "Trigger a training run (a worker executes it); --wait follows it to the end."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--mode", required=True, choices=TrainingRun.Mode.values)
        parser.add_argument("--loss", default="multi_similarity")
        parser.add_argument("--epochs", type=int, default=5)
        parser.add_argument("--lr", type=float, default=1e-4)
        parser.add_argument("--batch-size", type=int, default=64)
        parser.add_argument("--device", default="auto")
        parser.add_argument("--data", default="both", help="both | triplets | labels | clicks")
        parser.add_argument("--backbone", action="store_true", help="batch mode: fine-tune the backbone too (GPU)")
        parser.add_argument("--wait", action="store_true", help="print progress until the run ends")

    def handle(self, *args, wait: bool, **options) -> None:
        form = RetrainForm({key: options[key] for key in ("mode", "loss", "epochs", "batch_size", "lr", "device",
                                                          "data", "backbone")})
        if not form.is_valid():
            raise CommandError("; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items()))
        try:
            run = start_run(form.cleaned_data["mode"], form.params())
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
