"""Store a validated image: original and thumbnail files plus its database row, de-duplicated by SHA-256."""

from __future__ import annotations

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from PIL import Image as PILImage

from retrieval.images import DecodedImage, decode_image, make_thumbnail
from webapp.gallery.models import Image

_EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tif"}


def _write_once(name: str, data: bytes) -> str:
    """Content-addressed names: the same bytes always land at the same path, written once."""
    if default_storage.exists(name):
        return name
    return default_storage.save(name, ContentFile(data))


def store_image(
    decoded: DecodedImage, data: bytes, *, role: str, label: str = "", original_name: str = "", source: str = ""
) -> tuple[Image, bool]:
    """Return (image, created). An existing image with the same bytes is reused; a gallery import
    promotes an earlier query image to the gallery and fills in a missing label and source path."""
    existing = Image.objects.filter(sha256=decoded.sha256).first()
    if existing is not None:
        return _merge(existing, role=role, label=label, original_name=original_name, source=source), False
    prefix = f"{decoded.sha256[:2]}/{decoded.sha256}"
    file_name = _write_once(f"originals/{prefix}.{_EXTENSIONS.get(decoded.format, 'bin')}", data)
    thumb_name = _write_once(f"thumbnails/{prefix}.jpg", make_thumbnail(decoded.rgb))
    try:
        with transaction.atomic():
            image = Image.objects.create(
                sha256=decoded.sha256, role=role, file=file_name, thumbnail=thumb_name, label=label[:200],
                original_name=original_name[:255], source=source[:1000], format=decoded.format,
                width=decoded.width, height=decoded.height,
            )
    except IntegrityError:  # a concurrent request stored the same bytes first
        return _merge(Image.objects.get(sha256=decoded.sha256), role=role, label=label,
                      original_name=original_name, source=source), False
    return image, True


def _merge(image: Image, *, role: str, label: str, original_name: str, source: str = "") -> Image:
    changed = []
    if role == Image.Role.GALLERY and image.role != Image.Role.GALLERY:
        # A query's bytes imported into the gallery: public from now on, under the importer's file name (the
        # uploader's name for it is private).
        image.role = Image.Role.GALLERY
        image.original_name = original_name[:255]
        changed += ["role", "original_name"]
    if label and not image.label:
        image.label = label[:200]
        changed.append("label")
    if source and not image.source:
        image.source = source[:1000]
        changed.append("source")
    if changed:
        image.save(update_fields=changed)
    return image


def read_stored_rgb(name: str) -> PILImage.Image:
    """Decode a stored original (validated when it was stored: only the pixel bound applies again).

    Raises OSError when the storage cannot read it, ImageRejected when it no longer decodes."""
    with default_storage.open(name, "rb") as handle:
        data = handle.read()
    return decode_image(data, max_bytes=len(data) + 1, min_side=1, max_pixels=settings.MAX_IMAGE_PIXELS).rgb
