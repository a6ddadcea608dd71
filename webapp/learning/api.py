"""Staff API: training runs (list, trigger), model versions (list, rollback), evaluation reports."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.gallery.models import ModelVersion
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import RunParameters, RunParametersSerializer
from webapp.learning.promotion import VersionUnavailable, rollback
from webapp.learning.runs import cancel, start_run

ERROR = inline_serializer("LearningError", {"detail": serializers.CharField()})


class TrainingRunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = ["id", "mode", "params", "status", "progress", "message", "error", "candidate", "attempts",
                  "created_at", "started_at", "finished_at", "duration_seconds"]


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = TrainingRun.objects.all()
    serializer_class = TrainingRunSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(request=RunParametersSerializer, responses={
        202: TrainingRunSerializer, 400: OpenApiResponse(ERROR),
        409: OpenApiResponse(ERROR, description="Another run is in progress, or no worker serves the run's queue.")})
    def create(self, request: Request) -> Response:
        """Trigger a run; 409 while another run is in progress or when no worker would take it."""
        run = start_run(RunParameters.parse(request.data), user=request.user)  # errors: webapp.errors.ANSWERS
        run.refresh_from_db()
        return Response(TrainingRunSerializer(run).data, status.HTTP_202_ACCEPTED)

    @extend_schema(request=None, responses={
        200: TrainingRunSerializer, 409: OpenApiResponse(ERROR, description="The run has finished already.")})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        """Cancel a queued or running run: the claim is free at once; a running task stops at its next step
        and publishes nothing."""
        return Response(TrainingRunSerializer(cancel(self.get_object(), request.user)).data)


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "backbone", "head_kind", "parent", "config", "triplet_watermark", "metrics", "promotion",
                  "promotion_note", "duration_seconds", "is_active", "created_at"]


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ModelVersion.objects.all()
    serializer_class = ModelVersionSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={
        200: ModelVersionSerializer,
        409: OpenApiResponse(ERROR, description="An artifact of the version cannot be fetched.")})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Serve this version again (re-activates its index)."""
        version = self.get_object()
        try:
            rollback(version)
        except VersionUnavailable as exc:
            return Response({"detail": f"Version {version.pk} cannot be served. {exc}"}, status.HTTP_409_CONFLICT)
        version.refresh_from_db()
        return Response(ModelVersionSerializer(version).data)


class ReportSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="id")

    class Meta:
        model = ModelVersion
        fields = ["version", "head_kind", "is_active", "promotion", "metrics", "created_at"]


class ReportViewSet(viewsets.ReadOnlyModelViewSet):
    """Evaluation reports (Recall@K, NMI, MAP@R; feedback Recall@K) per model version."""

    queryset = ModelVersion.objects.exclude(metrics={}).order_by("id")
    serializer_class = ReportSerializer
    permission_classes = [IsAdminUser]
