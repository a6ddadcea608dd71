"""Import files into the gallery: validate, de-duplicate, store, extract features in batches.

The unit of work is a list of files (one chunk of an import job, webapp/gallery/jobs.py). Idempotent:
files whose bytes are already stored *with* cached features are skipped without decoding; a file
stored before a crash but not yet embedded is embedded when its chunk runs again. Bad files are
reported and skipped; they never stop the import.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from retrieval.images import DecodedImage, ImageRejected, decode_image
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.storing import store_image
from webapp.runtime import runtime

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass
class ImportItem:
    """One file to import: `read()` returns its bytes (raises OSError or ImageRejected)."""

    name: str  # shown in reports: the path, or the uploaded file's name
    read: Callable[[], bytes]
    label: str = ""
    source: str = ""  # the path it came from (watched folders withdraw by it)
    data: bytes = b""
    sha256: str = ""
    decoded: DecodedImage | None = None
    skipped: bool = False
    error: str | None = None


@dataclass
class ImportReport:
    found: int = 0
    imported: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    index_version: int | None = None

    def summary(self) -> str:
        return (
            f"{self.found} image files: {self.imported} imported, {self.skipped} already present, "
            f"{len(self.failed)} failed."
        )


def find_images(root: Path) -> Iterator[tuple[Path, str | None]]:
    """(path, problem) for image files under root in a stable order; a problem means do not read it."""
    root = root.resolve()
    for directory, subdirs, files in os.walk(root, followlinks=False):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            yield path, path_problem(path, root)


def path_problem(path: Path, root: Path) -> str | None:
    """Why `path` must not be read as part of an import of `root` (None when it may)."""
    real = path.resolve()
    if not real.is_relative_to(root.resolve()):
        return f"symlink points outside {root}"
    if not real.is_file():
        return "not a regular file"
    return None


def label_for(path: Path, root: Path, labels_from_dirs: bool) -> str:
    if not labels_from_dirs:
        return ""
    parent = path.parent.relative_to(root.resolve())
    return str(parent) if str(parent) != "." else ""


def import_items(
    items: list[ImportItem], report: ImportReport, progress: Callable[[int], None] | None = None
) -> None:
    """Import `items` into the gallery, counting into `report`; `progress(n)` after each batch of n files."""
    backbone = ModelVersion.active().backbone  # features for the model that will index them
    store = runtime.feature_store(backbone)
    report.found += len(items)
    for item in items:  # hash first: files already imported are never decoded
        try:
            item.sha256 = hashlib.sha256(item.read()).hexdigest()
        except ImageRejected as exc:
            item.error = str(exc)
        except OSError as exc:
            item.error = f"cannot read the file ({exc.strerror or exc})"
    done = _shas_with_features(store, {item.sha256 for item in items if item.sha256})

    def load(item: ImportItem) -> PILImage.Image | None:
        if item.error:
            return None
        if item.sha256 in done:
            item.skipped = True
            return None
        try:
            item.data = item.read()
            item.decoded = decode_image(
                item.data, max_bytes=settings.MAX_UPLOAD_BYTES, min_side=settings.MIN_IMAGE_SIDE,
                max_pixels=settings.MAX_IMAGE_PIXELS,
            )
            return item.decoded.rgb
        except ImageRejected as exc:
            item.error = str(exc)
        except OSError as exc:
            item.error = f"cannot read the file ({exc.strerror or exc})"
        return None

    step = 4 * settings.EXTRACT_BATCH_SIZE
    for start in range(0, len(items), step):
        batch = items[start : start + step]
        for embedded, features in runtime.extractor(backbone).stream(batch, load):
            _store_batch(embedded, features, store, report)
        for item in batch:
            if item.skipped:
                report.skipped += 1
            elif item.error:
                report.failed.append((item.name, item.error))
            item.data, item.decoded = b"", None  # free memory early
        if progress is not None:
            progress(len(batch))


def _store_batch(embedded: list[ImportItem], features: np.ndarray, store, report: ImportReport) -> None:
    """Files, rows, then features: a crash in between leaves a row that the next run embeds."""
    ids = np.array([
        store_image(item.decoded, item.data, role=Image.Role.GALLERY, label=item.label,
                    original_name=Path(item.name).name, source=item.source)[0].pk
        for item in embedded
    ], dtype=np.int64)
    already = store.contains(ids)
    seen: set[int] = set()
    for item, image_id, had_features in zip(embedded, ids.tolist(), already, strict=True):
        if had_features or image_id in seen:  # the same bytes under another name
            item.skipped = True
        else:
            report.imported += 1
        seen.add(image_id)
    store.append(ids, features)


def _shas_with_features(store, shas: set[str]) -> set[str]:
    """Which of `shas` are gallery images that are completely imported (their features are cached)."""
    stored = list(Image.objects.filter(role=Image.Role.GALLERY, sha256__in=shas).values_list("id", "sha256"))
    if not stored:
        return set()
    ids, found = zip(*stored, strict=True)
    mask = store.contains(np.array(ids, dtype=np.int64))
    return {sha for sha, has in zip(found, mask, strict=True) if has}
