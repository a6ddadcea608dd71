"""The gallery API: page through images; staff upload (as import jobs), relabel, rename and remove them.

GET /api/v1/images/ (anyone), POST /api/v1/images/ (multipart `files`, one or many images or zip/tar
archives, optional `label`, `labels_from_dirs`) → 202 with the import job, PATCH / DELETE
/api/v1/images/<id>/, POST /api/v1/images/remove/ {"ids": [...]}, GET /api/v1/imports/[<id>/] (staff),
DELETE /api/v1/queries/<id>/ (the user who searched with it).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.gallery import jobs, privacy, uploads
from webapp.gallery.models import Image, ImportJob
from webapp.gallery.removal import remove_images
from webapp.gallery.serializers import ImageSerializer
from webapp.params import MAX_ID


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False, max_length=1000,
                                  help_text="Images (JPEG, PNG, WebP, GIF, BMP, TIFF) or zip / tar archives of them.")
    label = serializers.CharField(required=False, default="", allow_blank=True, max_length=200)
    labels_from_dirs = serializers.BooleanField(required=False, default=False,
                                                help_text="Label each image with its folder path (archive members, "
                                                          "or files given with `paths`).")
    paths = serializers.ListField(child=serializers.CharField(max_length=1000), required=False, default=list,
                                  max_length=1000, help_text="Relative path of each file (a folder upload), in order.")

    def validate_files(self, files):
        limit = settings.MAX_IMPORT_REQUEST_BYTES
        for upload in files:
            if not uploads.is_archive(upload.name) and upload.size > settings.MAX_UPLOAD_BYTES:
                raise serializers.ValidationError(
                    f"{upload.name} is {upload.size / 1e6:.1f} MB; "
                    f"the limit is {settings.MAX_UPLOAD_BYTES / 1e6:.1f} MB.")
            if upload.size > limit:
                raise serializers.ValidationError(f"{upload.name} is larger than {limit} bytes.")
        return files

    def validate(self, data):
        if data["paths"] and len(data["paths"]) != len(data["files"]):
            raise serializers.ValidationError({"paths": "give one path per file, or none"})
        return data


class ImageUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Image
        fields = ["label", "original_name"]
        extra_kwargs = {"original_name": {"help_text": "Display name."}}


class RemoveSerializer(serializers.Serializer):
    ids = serializers.ListField(child=serializers.IntegerField(min_value=1, max_value=MAX_ID), allow_empty=False,
                                max_length=100_000)


class ImportJobSerializer(serializers.Serializer):
    """Live progress of an import job."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=ImportJob.Status.choices)
    source = serializers.ChoiceField(choices=ImportJob.Source.choices)
    message = serializers.CharField()
    total = serializers.IntegerField()
    done = serializers.IntegerField()
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    failed = serializers.IntegerField()
    images_per_second = serializers.FloatField(allow_null=True)
    seconds_left = serializers.FloatField(allow_null=True)
    index_version = serializers.IntegerField(allow_null=True)
    errors = serializers.ListField(child=inline_serializer("ImportError", {
        "file": serializers.CharField(), "reason": serializers.CharField()}))
    created_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)


class ImageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                   mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Gallery images in import order; filter with ?label= and ?split=feedback|heldout."""

    serializer_class = ImageSerializer
    parser_classes = [JSONParser, MultiPartParser, FormParser]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_permissions(self):
        return [AllowAny()] if self.action in ("list", "retrieve") else [IsAdminUser()]

    def get_serializer_class(self):
        return {"partial_update": ImageUpdateSerializer, "create": UploadSerializer,
                "remove": RemoveSerializer}.get(self.action, ImageSerializer)

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

    @extend_schema(request={"multipart/form-data": UploadSerializer}, responses={202: ImportJobSerializer})
    def create(self, request: Request) -> Response:
        """Upload images or archives: they are imported by an import job (poll GET /api/v1/imports/<id>/)."""
        form = UploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            job = uploads.start_upload_import(form.validated_data["files"], label=form.validated_data["label"],
                                              labels_from_dirs=form.validated_data["labels_from_dirs"],
                                              paths=form.validated_data["paths"], user=request.user)
        except uploads.UploadRejected as exc:
            raise serializers.ValidationError({"files": str(exc)}) from exc
        return Response(jobs.job_progress(job), status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ImageUpdateSerializer, responses={200: ImageSerializer})
    def partial_update(self, request: Request, *args, **kwargs) -> Response:
        """Relabel an image or change its display name."""
        image = self.get_object()
        form = ImageUpdateSerializer(image, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        return Response(ImageSerializer(image, context={"request": request}).data)

    def update(self, request: Request, *args, **kwargs) -> Response:
        return self.partial_update(request, *args, **kwargs)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        """Remove an image: out of results at once; its files and features are deleted."""
        remove_images([self.get_object().pk], roles=[Image.Role.GALLERY])
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=RemoveSerializer,
                   responses={200: inline_serializer("Removed", {"removed": serializers.IntegerField()})})
    @action(detail=False, methods=["post"])
    def remove(self, request: Request) -> Response:
        """Remove many gallery images at once (unknown or already removed ids are ignored)."""
        form = RemoveSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        return Response({"removed": remove_images(form.validated_data["ids"], roles=[Image.Role.GALLERY])})


class ImportJobViewSet(viewsets.ViewSet):
    """Import jobs with live progress (files done / failed / duplicates, images per second, time left)."""

    permission_classes = [IsAdminUser]

    @extend_schema(responses={200: ImportJobSerializer(many=True)})
    def list(self, request: Request) -> Response:
        return Response([jobs.job_progress(job) for job in ImportJob.objects.all()[:50]])

    @extend_schema(parameters=[OpenApiParameter("id", int, OpenApiParameter.PATH, description="Import job id")],
                   responses={200: ImportJobSerializer})
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        job = ImportJob.objects.filter(pk=pk).first() if str(pk).isdigit() else None
        if job is None:
            raise NotFound("No such import job.")
        return Response(jobs.job_progress(job))


class QueryImageView(APIView):
    """DELETE /api/v1/queries/<id>/: delete a query image you uploaded (files and features; gone from history)."""

    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, image_id: int) -> Response:
        if not privacy.owns_query(request, image_id):
            raise NotFound("No query image of yours with this id.")
        remove_images([image_id], roles=[Image.Role.QUERY])
        return Response(status=status.HTTP_204_NO_CONTENT)
