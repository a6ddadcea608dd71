"""The feature store is a per-host cache: features another host extracted are re-extracted here from media.

Every host appends what it extracts (imports, uploaded queries) to its own store under REFIND_DATA_DIR.
A host that needs features it lacks — a web replica asked for "similar to" an image imported elsewhere,
a worker building an index over a gallery another worker imported — reads the stored originals from the
media storage and extracts them once. The backbone is deterministic, so every host holds the same rows.
"""

from __future__ import annotations

import logging

import numpy as np
from django.conf import settings
from PIL import Image as PILImage

from retrieval.backbones import BackboneUnavailable
from retrieval.feature_store import FeatureStore
from retrieval.images import ImageRejected
from webapp.gallery.models import Image
from webapp.gallery.storing import read_stored_rgb
from webapp.runtime import runtime

logger = logging.getLogger(__name__)


def ensure_features(ids: np.ndarray, backbone: str | None = None) -> FeatureStore:
    """This host's feature store, holding features for each image in `ids` whose original can be read.

    Backbones that cannot be loaded here (e.g. torchvision weights this host lacks) cannot extract: their
    stores are returned as they are.
    """
    name = backbone or settings.BACKBONE
    store = runtime.feature_store(name)
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    missing = ids[~store.contains(ids)] if len(ids) else ids
    if not len(missing):
        return store
    try:
        extractor = runtime.extractor(name)
    except (BackboneUnavailable, OSError) as exc:
        logger.warning("Cannot extract features with %s here: %s", name, exc)
        return store
    images = list(Image.objects.filter(pk__in=missing.tolist()).exclude(role=Image.Role.REMOVED).only("id", "file"))
    failed: list[str] = []

    def load(image: Image) -> PILImage.Image | None:
        try:
            return read_stored_rgb(image.file.name)
        except (ImageRejected, OSError) as exc:
            failed.append(f"{image.pk}: {exc}")
            return None

    extracted = 0
    for done, features in extractor.stream(images, load):
        if done:
            store.append(np.array([image.pk for image in done], dtype=np.int64), features)
            extracted += len(done)
    logger.info("Extracted features of %d images stored by other hosts", extracted)
    if failed:
        logger.warning("Cannot extract features of %d images: %s", len(failed), "; ".join(failed[:5]))
    return store
