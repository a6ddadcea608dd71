"""Import a folder tree into the gallery: validate, store, extract features in batches, index.

Resumable: files whose bytes are already stored *with* cached features are skipped without
decoding; a file stored before a crash but not yet embedded is embedded on the next run.
Bad files are reported and skipped; they never stop the import.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from retrieval.images import DecodedImage, ImageRejected, decode_image, sha256_of
from webapp.gallery import indexing
from webapp.gallery.models import Image, ModelVersion
from webapp.gallery.storing import store_image
from webapp.runtime import runtime

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})


@dataclass
class _Candidate:
    path: Path
    label: str
    data: bytes = b""
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
            real = path.resolve()
            if not real.is_relative_to(root):
                yield path, f"symlink points outside {root}"
            elif not real.is_file():
                yield path, "not a regular file"
            else:
                yield path, None


def _label_for(path: Path, root: Path, labels_from_dirs: bool) -> str:
    if not labels_from_dirs:
        return ""
    parent = path.parent.relative_to(root.resolve())
    return str(parent) if str(parent) != "." else ""


def import_tree(
    root: str | os.PathLike,
    *,
    labels_from_dirs: bool = False,
    build_index: bool = True,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import every image under `root`; `progress(n)` is called as files are processed."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder.")
    report = ImportReport()
    backbone = ModelVersion.active().backbone  # features for the model that will index them
    store = runtime.feature_store(backbone)
    done = _shas_with_features(store)
    candidates: list[_Candidate] = []
    for path, problem in find_images(root):
        report.found += 1
        if problem:
            report.failed.append((str(path), problem))
            _tick(progress)
        else:
            candidates.append(_Candidate(path, _label_for(path, root, labels_from_dirs)))

    def load(candidate: _Candidate) -> PILImage.Image | None:
        try:
            candidate.data = candidate.path.read_bytes()
            if sha256_of(candidate.data) in done:
                candidate.skipped = True
                return None
            candidate.decoded = decode_image(
                candidate.data, max_bytes=settings.MAX_UPLOAD_BYTES, min_side=settings.MIN_IMAGE_SIDE,
                max_pixels=settings.MAX_IMAGE_PIXELS,
            )
            return candidate.decoded.rgb
        except ImageRejected as exc:
            candidate.error = str(exc)
        except OSError as exc:
            candidate.error = f"cannot read the file ({exc.strerror or exc})"
        return None

    batch_size = settings.EXTRACT_BATCH_SIZE
    for start in range(0, len(candidates), 4 * batch_size):
        chunk = candidates[start : start + 4 * batch_size]
        for embedded, features in runtime.extractor(backbone).stream(chunk, load):
            _store_batch(embedded, features, store, report)
        for candidate in chunk:
            if candidate.skipped:
                report.skipped += 1
            elif candidate.error:
                report.failed.append((str(candidate.path), candidate.error))
            candidate.data, candidate.decoded = b"", None  # free memory early
            _tick(progress)
    if build_index and (report.imported or indexing.index_is_stale()):
        report.index_version = indexing.build_and_activate().pk
    return report


def _store_batch(embedded: list[_Candidate], features: np.ndarray, store, report: ImportReport) -> None:
    """Files, rows, then features: a crash in between leaves a row that the next run embeds."""
    ids = np.array([
        store_image(
            candidate.decoded, candidate.data, role=Image.Role.GALLERY, label=candidate.label,
            original_name=candidate.path.name,
        )[0].pk
        for candidate in embedded
    ], dtype=np.int64)
    already = store.contains(ids)
    seen: set[int] = set()
    for candidate, image_id, had_features in zip(embedded, ids.tolist(), already, strict=True):
        if had_features or image_id in seen:  # the same bytes under another name
            candidate.skipped = True
        else:
            report.imported += 1
        seen.add(image_id)
    store.append(ids, features)


def _shas_with_features(store) -> set[str]:
    """Gallery images that are completely imported (their features are cached)."""
    stored = Image.objects.filter(role=Image.Role.GALLERY).values_list("id", "sha256")
    if not stored:
        return set()
    ids, shas = zip(*stored, strict=True)
    mask = store.contains(np.array(ids, dtype=np.int64))
    return {sha for sha, has in zip(shas, mask, strict=True) if has}


def _tick(progress: Callable[[int], None] | None) -> None:
    if progress is not None:
        progress(1)
