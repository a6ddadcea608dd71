"""Staff API: training runs (list, trigger), model versions (list, rollback), evaluation reports."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from webapp.gallery.models import ModelVersion
from webapp.learning import claims
from webapp.learning.forms import RetrainForm
from webapp.learning.models import TrainingRun
from webapp.learning.promotion import RollbackRefused, rollback
from webapp.learning.runs import start_run

ERROR = inline_serializer("LearningError", {"detail": serializers.CharField()})


class TrainingRunSerializer(serializers.ModelSerializer):
    duration_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = TrainingRun
        fields = ["id", "mode", "params", "status", "progress", "message", "error", "candidate", "attempts",
                  "created_at", "started_at", "finished_at", "duration_seconds"]


class RetrainRequestSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=TrainingRun.Mode.values)
    loss = serializers.CharField(required=False)
    epochs = serializers.IntegerField(required=False)
    lr = serializers.FloatField(required=False)
    device = serializers.ChoiceField(choices=["auto", "cpu", "cuda"], required=False)
    data = serializers.ChoiceField(choices=["both", "triplets", "labels"], required=False)


class TrainingRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    queryset = TrainingRun.objects.all()
    serializer_class = TrainingRunSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(request=RetrainRequestSerializer, responses={
        202: TrainingRunSerializer, 400: OpenApiResponse(ERROR), 409: OpenApiResponse(ERROR, description="busy")})
    def create(self, request: Request) -> Response:
        """Trigger a run; 409 while another run is in progress."""
        form = RetrainForm(request.data)
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            return Response({"detail": f"{field}: {errors[0]}", "errors": form.errors}, status.HTTP_400_BAD_REQUEST)
        try:
            run = start_run(form.cleaned_data["mode"], form.params(), user=request.user)
        except claims.TrainingBusy as exc:
            return Response({"detail": str(exc)}, status.HTTP_409_CONFLICT)
        run.refresh_from_db()
        return Response(TrainingRunSerializer(run).data, status.HTTP_202_ACCEPTED)


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = ["id", "backbone", "head_kind", "parent", "config", "triplet_watermark", "metrics", "promotion",
                  "promotion_note", "duration_seconds", "is_active", "created_at"]


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ModelVersion.objects.all()
    serializer_class = ModelVersionSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(request=None, responses={200: ModelVersionSerializer})
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str | None = None) -> Response:
        """Serve this version again (re-activates its index)."""
        version = self.get_object()
        try:
            rollback(version)
        except RollbackRefused as exc:
            return Response({"detail": str(exc)}, status=400)
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
