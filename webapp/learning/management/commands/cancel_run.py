"""python manage.py cancel_run [RUN_ID]: cancel a queued or running training run (default: the one in progress)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from webapp.learning import claims
from webapp.learning.models import TrainingRun
from webapp.learning.runs import NotCancellable, cancel


class Command(BaseCommand):
    help = "Cancel a training run: the claim is free at once; a running task stops at its next step."

    def add_arguments(self, parser) -> None:
        parser.add_argument("run_id", nargs="?", type=int, help="default: the run holding the claim")

    def handle(self, *args, run_id: int | None, **options) -> None:
        run = claims.holder() if run_id is None else TrainingRun.objects.filter(pk=run_id).first()
        if run is None:
            raise CommandError("No training run is in progress." if run_id is None else f"No training run {run_id}.")
        try:
            run = cancel(run)
        except NotCancellable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Cancelled run {run.pk} ({run.mode}).")
