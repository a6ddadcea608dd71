"""The gallery state a report was measured on: reports of different states are not comparable (docs/gallery.md)."""

from __future__ import annotations

import hashlib

from webapp.gallery.models import Image


def gallery_state() -> dict:
    """Which gallery a report was measured on: counts, the last change, and a digest of every (id, label, split)."""
    gallery = Image.objects.filter(role=Image.Role.GALLERY)
    digest = hashlib.sha256()
    labelled = 0
    for pk, label, split in gallery.order_by("id").values_list("id", "label", "split").iterator(chunk_size=10_000):
        digest.update(f"{pk}\t{label}\t{split}\n".encode())
        labelled += bool(label)
    last = Image.objects.exclude(role=Image.Role.QUERY).order_by("-updated_at").values_list(
        "updated_at", flat=True).first()
    return {"images": gallery.count(), "labelled": labelled,
            "removed": Image.objects.filter(role=Image.Role.REMOVED).count(),
            "last_change": last.isoformat() if last else None, "digest": digest.hexdigest()[:16]}
