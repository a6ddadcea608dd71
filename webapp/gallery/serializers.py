"""API representations of gallery images."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.request import Request

from webapp.gallery.models import Image


def image_urls(request: Request | None, image: Image) -> dict[str, str]:
    """Absolute URLs of an image's original and thumbnail."""
    build = request.build_absolute_uri if request is not None else (lambda url: url)
    return {"image_url": build(image.file.url), "thumbnail_url": build(image.thumbnail.url)}


class ImageSerializer(serializers.ModelSerializer):
    image_url = serializers.SerializerMethodField()
    thumbnail_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = ["id", "label", "split", "original_name", "width", "height", "format", "sha256", "created_at",
                  "image_url", "thumbnail_url"]

    def get_image_url(self, image: Image) -> str:
        return image_urls(self.context.get("request"), image)["image_url"]

    def get_thumbnail_url(self, image: Image) -> str:
        return image_urls(self.context.get("request"), image)["thumbnail_url"]
