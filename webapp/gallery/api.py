"""GET /api/v1/images/: page through the gallery."""

from __future__ import annotations

from rest_framework import viewsets

from webapp.gallery.models import Image
from webapp.gallery.serializers import ImageSerializer


class ImageViewSet(viewsets.ReadOnlyModelViewSet):
    """Gallery images in import order; filter with ?label=."""

    serializer_class = ImageSerializer

    def get_queryset(self):
        images = Image.objects.filter(role=Image.Role.GALLERY).order_by("id")
        label = self.request.query_params.get("label")
        return images.filter(label=label) if label else images
