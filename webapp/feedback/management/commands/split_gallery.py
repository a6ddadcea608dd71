"""python manage.py split_gallery [--seed S] [--feedback-fraction F]"""

from django.core.management.base import BaseCommand, CommandError

from webapp.feedback.splits import split_gallery


class Command(BaseCommand):
    help = "Split the labelled gallery per label into a feedback half and a held-out half (stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--feedback-fraction", type=float, default=0.5)

    def handle(self, *args, seed: int, feedback_fraction: float, **options) -> None:
        try:
            split = split_gallery(seed, feedback_fraction)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Split {split.pk}: {split.feedback_count} feedback, {split.heldout_count} held-out "
                          f"(seed {seed}).")
