"""GET /api/v1/images/: page through the gallery."""

from __future__ import annotations

from rest_framework import serializers, viewsets

from webapp.gallery.models import Image
from webapp.gallery.serializers import ImageSerializer


class ImageViewSet(viewsets.ReadOnlyModelViewSet):
    """Gallery images in import order; filter with ?label= and ?split=feedback|heldout."""

    serializer_class = ImageSerializer

    def get_queryset(self):
        images = Image.objects.filter(role=Image.Role.GALLERY).order_by("id")
        params = self.request.query_params
        if label := params.get("label"):
            images = images.filter(label=label)
        if split := params.get("split"):
            if split not in (Image.Split.FEEDBACK, Image.Split.HELDOUT):
                raise serializers.ValidationError({"split": "must be feedback or heldout"})
            images = images.filter(split=split)
        return images
