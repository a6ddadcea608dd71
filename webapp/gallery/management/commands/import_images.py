"""python manage.py import_images PATH [--labels-from-dirs]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from retrieval.backbones import BackboneUnavailable
from webapp.gallery.importer import find_images, import_tree


class Command(BaseCommand):
    help = "Import a folder tree of images (JPEG, PNG, WebP, GIF, BMP, TIFF) into the gallery; resumable."

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--labels-from-dirs", action="store_true",
            help="Label each image with its folder path relative to PATH (e.g. species/001.jpg -> species).",
        )
        parser.add_argument("--no-index", action="store_true", help="Store and embed only; index later.")

    def handle(self, *args, path: Path, labels_from_dirs: bool, no_index: bool, **options) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder.")
        total = sum(1 for _ in find_images(path))
        with tqdm(total=total, unit="img", desc="Importing", disable=options["verbosity"] == 0) as bar:
            try:
                report = import_tree(path, labels_from_dirs=labels_from_dirs, build_index=not no_index,
                                     progress=bar.update)
            except BackboneUnavailable as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(report.summary())
        if report.index_version:
            self.stdout.write(f"Index version {report.index_version} is now active.")
        if report.failed:
            self.stdout.write(self.style.WARNING(f"{len(report.failed)} files could not be imported:"))
            for file, reason in report.failed:
                self.stdout.write(f"  {file}: {reason}")
