"""python manage.py seed_demo: fill an empty gallery with the generated demo images."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from webapp.gallery.demo import CLASSES, generate_demo_gallery
from webapp.gallery.models import Image


class Command(BaseCommand):
    help = "Generate and import a labelled demo gallery when the gallery is empty."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--per-class", type=int, default=25)
        parser.add_argument("--force", action="store_true", help="Seed even if the gallery has images.")

    def handle(self, *args, per_class: int, force: bool, **options) -> None:
        if Image.objects.filter(role=Image.Role.GALLERY).exists() and not force:
            self.stdout.write("The gallery already has images; not seeding the demo.")
            return
        folder = settings.DATA_DIR / "demo-gallery"
        count = generate_demo_gallery(folder, per_class=per_class)
        self.stdout.write(f"Generated {count} demo images in {len(CLASSES)} classes under {folder}.")
        call_command("import_images", str(folder), labels_from_dirs=True, verbosity=options["verbosity"])
