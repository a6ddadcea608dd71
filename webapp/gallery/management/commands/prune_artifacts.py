"""python manage.py prune_artifacts [--delete] [--keep N] [--grace-seconds S]"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from webapp.gallery.retention import DEFAULT_GRACE_SECONDS, prune


class Command(BaseCommand):
    help = ("Delete model and index artifacts nothing references (webapp/gallery/retention.py). "
            "A dry run unless --delete is given.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--delete", action="store_true", help="Really delete (default: only list).")
        parser.add_argument("--keep", type=int, default=None,
                            help="Rollback targets to keep (default REFIND_KEEP_ROLLBACK_VERSIONS).")
        parser.add_argument("--grace-seconds", type=float, default=DEFAULT_GRACE_SECONDS,
                            help="Unreferenced files younger than this stay (a publish may be in flight).")

    def handle(self, *args, delete: bool, keep: int | None, grace_seconds: float, **options) -> None:
        report = prune(dry_run=not delete, keep=keep, grace_seconds=grace_seconds)
        for name in report.files:
            self.stdout.write(f"  {name}")
        self.stdout.write(report.summary())
        if report.dry_run:
            self.stdout.write("Dry run: nothing was deleted. Run with --delete to delete.")
