"""python manage.py import_images PATH [--labels-from-dirs] [--no-index] [--no-workers]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from retrieval.backbones import BackboneUnavailable
from webapp.gallery import jobs


class Command(BaseCommand):
    help = ("Import a folder tree of images (JPEG, PNG, WebP, GIF, BMP, TIFF) into the gallery as an import job: "
            "its chunks go to the workers and this command works on them too; resumable.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument(
            "--labels-from-dirs", action="store_true",
            help="Label each image with its folder path relative to PATH (e.g. species/001.jpg -> species).",
        )
        parser.add_argument("--no-index", action="store_true", help="Store and embed only; index later.")
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--no-workers", action="store_true",
                           help="Do not send chunks to Celery workers; import in this process only.")
        group.add_argument("--detach", action="store_true",
                           help="Only create the job and send its chunks to the workers; print its id and return.")

    def handle(self, *args, path: Path, labels_from_dirs: bool, no_index: bool, no_workers: bool, detach: bool,
               **options) -> None:
        if not path.is_dir():
            raise CommandError(f"{path} is not a folder.")
        job = jobs.start_folder_import(path, labels_from_dirs=labels_from_dirs, build_index=not no_index,
                                       send=not no_workers)
        self.stdout.write(f"Import job {job.pk}: {job.total} files in {job.chunks.count()} chunks.")
        if detach:
            self.stdout.write(f"Sent to the workers; progress: GET /api/v1/imports/{job.pk}/ or the gallery page.")
            return
        with tqdm(total=job.total, unit="img", desc="Importing", disable=options["verbosity"] == 0) as bar:

            def show(state: dict) -> None:
                bar.update(state["done"] - bar.n)
                bar.set_postfix(imported=state["imported"], duplicates=state["duplicates"], failed=state["failed"])

            try:
                job = jobs.work_on(job, show)
            except BackboneUnavailable as exc:
                raise CommandError(str(exc)) from exc
        report = jobs.report_of(job)
        self.stdout.write(report.summary())
        if report.index_version:
            self.stdout.write(f"Index version {report.index_version} is now active.")
        if report.failed:
            self.stdout.write(self.style.WARNING(f"{len(report.failed)} files could not be imported:"))
            for file, reason in report.failed:
                self.stdout.write(f"  {file}: {reason}")
