"""python manage.py evaluate [--version V] [--served]: print a model version's evaluation report as JSON;
--served: Recall@K of the result lists the active index serves (webapp/learning/served.py)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from webapp.gallery.models import ModelVersion
from webapp.learning.evaluation import evaluate_version
from webapp.learning.served import served_report


class Command(BaseCommand):
    help = "Evaluate a model version (default: the active one) and print its report as JSON."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        kwargs["conflict_handler"] = "resolve"  # our --version (a model version) replaces Django's
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser) -> None:
        parser.add_argument("--version", type=int, help="model version id")
        parser.add_argument("--served", action="store_true",
                            help="score the served result lists of the active index instead")

    def handle(self, *args, version: int | None, served: bool, **options) -> None:
        if served:
            if version is not None:
                raise CommandError("--served scores the active index; leave out --version.")
            self.stdout.write(json.dumps({"served": served_report()}, indent=2))
            return
        if version is None:
            target = ModelVersion.active()
        else:
            target = ModelVersion.objects.filter(pk=version).first()
            if target is None:
                raise CommandError(f"No model version {version}.")
        report = evaluate_version(target)
        self.stdout.write(json.dumps({"version": target.pk, "active": target.is_active, **report}, indent=2))
