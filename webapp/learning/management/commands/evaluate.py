"""python manage.py evaluate [--version V]: print a model version's evaluation report as JSON."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from webapp.gallery.models import ModelVersion
from webapp.learning.evaluation import evaluate_version


class Command(BaseCommand):
    help = "Evaluate a model version (default: the active one) and print its report as JSON."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        kwargs["conflict_handler"] = "resolve"  # our --version (a model version) replaces Django's
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--version", type=int, help="model version id")

    def handle(self, *args, version: int | None, **options) -> None:
        if version is None:
            target = ModelVersion.active()
        else:
            target = ModelVersion.objects.filter(pk=version).first()
            if target is None:
                raise CommandError(f"No model version {version}.")
        report = evaluate_version(target)
        self.stdout.write(json.dumps({"version": target.pk, "active": target.is_active, **report}, indent=2))
