"""python manage.py simulate_feedback --queries N --clicks-per-query C --noise P --seed S [--base-url URL]"""

from django.core.management.base import BaseCommand, CommandError

from webapp.feedback.simulated_user import SimulatedUser, SimulationError


class Command(BaseCommand):
    help = ("Act like a person over HTTP: search with feedback-half images and click results with the same "
            "label (with probability --noise a wrong one).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--queries", type=int, required=True)
        parser.add_argument("--clicks-per-query", type=int, default=3)
        parser.add_argument("--noise", type=float, default=0.0)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--k", type=int, default=20, help="results per search")
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, queries: int, clicks_per_query: int, noise: float, seed: int, k: int, base_url: str,
               **options) -> None:
        if queries < 1 or clicks_per_query < 0 or not 0.0 <= noise <= 1.0 or not 1 <= k <= 100:
            raise CommandError("Need --queries >= 1, --clicks-per-query >= 0, 0 <= --noise <= 1, 1 <= --k <= 100.")
        try:
            summary = SimulatedUser(base_url, seed).run(queries, clicks_per_query, noise, k)
        except (SimulationError, OSError) as exc:
            raise CommandError(f"Simulation stopped: {exc}") from exc
        self.stdout.write(str(summary))
