"""python manage.py remove_images [ID ...] [--label L] [--ids-from FILE]"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from webapp.gallery.models import Image
from webapp.gallery.removal import remove_images


class Command(BaseCommand):
    help = ("Remove gallery images: out of every result at once, their files and features deleted "
            "(the next index build leaves them out).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("ids", nargs="*", type=int, help="Image ids.")
        parser.add_argument("--label", help="Every gallery image with this label.")
        parser.add_argument("--ids-from", type=Path, help="A file with one image id per line.")

    def handle(self, *args, ids: list[int], label: str | None, ids_from: Path | None, **options) -> None:
        wanted = set(ids)
        if ids_from is not None:
            try:
                wanted |= {int(line) for line in ids_from.read_text().split() if line.strip()}
            except (OSError, ValueError) as exc:
                raise CommandError(f"{ids_from}: {exc}") from exc
        if label is not None:
            wanted |= set(Image.objects.filter(role=Image.Role.GALLERY, label=label).values_list("id", flat=True))
        if not wanted:
            raise CommandError("Name image ids, --label or --ids-from.")
        removed = remove_images(wanted, roles=[Image.Role.GALLERY])
        self.stdout.write(f"Removed {removed} of {len(wanted)} images (others were not gallery images).")
