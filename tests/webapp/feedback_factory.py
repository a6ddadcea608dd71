"""Hand-made galleries and impressions for feedback tests (no backbone needed)."""

from __future__ import annotations

from webapp.feedback.models import Impression
from webapp.gallery.models import Image, ModelVersion


def make_images(n: int, role: str = Image.Role.GALLERY, label: str = "") -> list[Image]:
    start = Image.objects.count()
    return [
        Image.objects.create(sha256=f"{start + i:064x}", role=role, file=f"originals/{start + i}.jpg",
                             thumbnail=f"thumbnails/{start + i}.jpg", label=label, format="JPEG", width=64, height=64)
        for i in range(n)
    ]


def make_impression(
    query: Image, shown: list[Image], session_key: str = "s1", user=None, offset: int = 0
) -> Impression:
    version, _ = ModelVersion.objects.get_or_create(backbone="test", head_kind="identity")
    return Impression.objects.create(query=query, model_version=version, index_version=1,
                                     shown=[image.pk for image in shown], offset=offset, session_key=session_key,
                                     user=user)
