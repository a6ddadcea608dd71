"""Feedback API: record judgements; staff list and export triplets."""

from __future__ import annotations

import json

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.authentication import CSRFCheck, TokenAuthentication
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission, IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.feedback import impressions
from webapp.feedback.models import Impression, Judgement, Triplet
from webapp.feedback.tasks import request_derivation
from webapp.feedback.triplets import FeedbackRejected, store_judgement, undo_verdict
from webapp.gallery import privacy
from webapp.gallery.models import Image
from webapp.params import MAX_ID, whole_number
from webapp.throttling import ClientThrottle

ERROR = inline_serializer("FeedbackError", {"detail": serializers.CharField()})


class ResultSerializer(serializers.Serializer):
    """One shown result: the query, the image, and which search showed it."""

    query_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    image_id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    impression_id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, required=False,
        help_text="The search's impression_id; default: your latest search of query_id.")


class FeedbackRequestSerializer(ResultSerializer):
    judgement = serializers.ChoiceField(choices=Judgement.Kind.values)


class FeedbackResponseSerializer(serializers.Serializer):
    judgement_id = serializers.IntegerField()
    impression_id = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when the same judgement was already recorded.")
    triplets_pending = serializers.BooleanField(
        help_text="True while a worker has yet to derive the judgement's triplets (they follow within moments).")
    triplets_retracted = serializers.IntegerField(
        help_text="Triplets of the result's earlier, opposite verdict, which this one replaced.")


class UndoResponseSerializer(serializers.Serializer):
    impression_id = serializers.IntegerField()
    undone = serializers.BooleanField(help_text="False when the result had no live similar / not-similar verdict.")
    triplets_retracted = serializers.IntegerField(help_text="Triplets the removed verdict had given.")


class CsrfUnlessToken(BasePermission):
    """Writes that rely on the browser session need the CSRF token, the anonymous visitor's too (DRF checks it
    only for logged-in users); a script authenticates with `Authorization: Token` instead."""

    def has_permission(self, request: Request, view) -> bool:
        if isinstance(request.successful_authenticator, TokenAuthentication):
            return True
        check = CSRFCheck(lambda _request: None)
        check.process_request(request._request)
        reason = check.process_view(request._request, None, (), {})
        if reason is not None:  # 403 (not the 401 DRF gives an anonymous request a permission refuses)
            raise PermissionDenied(f"CSRF failed: {reason.rstrip('.')}. "
                                   "Send X-CSRFToken with the session, or use a token.")
        return True


class FeedbackWrite(APIView):
    # a write about one shown result: the feedback rate limit, and CSRF unless a token is sent (a comment, not a
    # docstring: drf-spectacular would publish a docstring as every subclass's description)
    throttle_classes = [ClientThrottle]
    permission_classes = [CsrfUnlessToken]
    throttle_scope = "feedback"


REFUSALS = {  # the answers every FeedbackWrite may give besides its own
    403: OpenApiResponse(ERROR, description="Session without the CSRF token (send X-CSRFToken)."),
    404: OpenApiResponse(ERROR, description="No such query/image, or not your impression."),
    429: OpenApiResponse(ERROR, description="Rate limit (REFIND_THROTTLE_FEEDBACK)."),
}


class FeedbackView(FeedbackWrite):
    @extend_schema(
        request=FeedbackRequestSerializer,
        responses={
            201: FeedbackResponseSerializer,
            200: OpenApiResponse(FeedbackResponseSerializer, description="Already recorded (idempotent)."),
            400: OpenApiResponse(ERROR, description="Malformed, or the image was not shown for that query."),
            **REFUSALS,
        },
        summary="Record a click or an explicit similar / not-similar judgement",
    )
    def post(self, request: Request) -> Response:
        params = FeedbackRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        impression, refusal = _shown_result(request, data)
        if refusal is not None:
            return refusal
        try:
            recorded = store_judgement(impression, data["image_id"], data["judgement"])
        except FeedbackRejected as exc:
            return Response({"detail": str(exc)}, status.HTTP_400_BAD_REQUEST)
        body = {"judgement_id": recorded.judgement.pk, "impression_id": impression.pk,
                "created": recorded.created, "triplets_pending": not recorded.judgement.derived,
                "triplets_retracted": recorded.triplets_retracted}
        if recorded.created:
            transaction.on_commit(request_derivation)
        return Response(body, status.HTTP_201_CREATED if recorded.created else status.HTTP_200_OK)


class FeedbackUndoView(FeedbackWrite):
    @extend_schema(
        request=ResultSerializer,
        responses={200: UndoResponseSerializer, 400: OpenApiResponse(ERROR, description="Malformed."), **REFUSALS},
        summary="Undo a similar / not-similar verdict (its triplets are retracted; clicks stay)",
    )
    def post(self, request: Request) -> Response:
        params = ResultSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        impression, refusal = _shown_result(request, params.validated_data)
        if refusal is not None:
            return refusal
        retracted = undo_verdict(impression, params.validated_data["image_id"])
        return Response({"impression_id": impression.pk, "undone": retracted is not None,
                         "triplets_retracted": retracted or 0})


def _shown_result(request: Request, data: dict) -> tuple[Impression | None, Response | None]:
    """The impression that showed `image_id` for `query_id` to this requester, or the 404 that says why."""
    def not_found(field: str) -> tuple[None, Response]:  # someone else's query is "not found", like a missing id
        return None, Response({"detail": f"No image with id {data[field]} ({field})."}, status.HTTP_404_NOT_FOUND)

    if data.get("impression_id") is not None:  # the usual click, in one query; anything else is sorted out below
        found = impressions.own_showing_gallery_image(request, data["impression_id"], data["query_id"],
                                                      data["image_id"])
        if found is not None:
            return found, None
    images = {image.pk: image for image in
              Image.objects.filter(pk__in=[data["query_id"], data["image_id"]]).only("id", "role")}
    query, shown = images.get(data["query_id"]), images.get(data["image_id"])
    if query is None:
        return not_found("query_id")
    if shown is None or not privacy.can_view(shown, request):
        return not_found("image_id")
    impression = impressions.find_for_judgement(request, data["query_id"], data["image_id"], data.get("impression_id"))
    if impression is None:  # (an impression of yours makes the query yours to see: checked only without one)
        if not privacy.can_view(query, request):
            return not_found("query_id")
        return None, Response({"detail": "No search of this query by you was found (impression)."},
                              status.HTTP_404_NOT_FOUND)
    return impression, None


class TripletSerializer(serializers.ModelSerializer):
    class Meta:
        model = Triplet
        fields = ["id", "anchor", "positive", "negative", "source", "judgement", "created_at"]


TRIPLET_FILTERS = [
    OpenApiParameter("source", str, enum=Triplet.Source.values),
    OpenApiParameter("anchor", int), OpenApiParameter("image", int, description="anchor, positive or negative"),
    OpenApiParameter("after", int, description="only ids above this watermark"),
    OpenApiParameter("since", str, description="ISO time: created at or after"),
]


def filter_triplets(params) -> tuple[object, str | None]:
    """Triplets filtered by query parameters, or an error message."""
    triplets = Triplet.objects.order_by("id")
    if source := params.get("source"):
        if source not in Triplet.Source.values:
            return None, f"source must be one of {', '.join(Triplet.Source.values)}."
        triplets = triplets.filter(source=source)
    numbers = {}
    for name in ("anchor", "image", "after"):
        if value := params.get(name):
            numbers[name] = whole_number(value)
            if numbers[name] is None:
                return None, f"anchor, image and after must be whole numbers from 0 to {MAX_ID}."
    if "anchor" in numbers:
        triplets = triplets.filter(anchor_id=numbers["anchor"])
    if (image := numbers.get("image")) is not None:
        triplets = triplets.filter(anchor_id=image) | triplets.filter(positive_id=image) | triplets.filter(
            negative_id=image)
    if "after" in numbers:
        triplets = triplets.filter(id__gt=numbers["after"])
    if since := params.get("since"):
        try:
            moment = parse_datetime(since)
        except ValueError:  # well formed but impossible, e.g. 2026-02-30T25:61
            moment = None
        if moment is None:
            return None, "since must be an ISO date-time, e.g. 2026-01-31T12:00:00Z."
        triplets = triplets.filter(created_at__gte=moment)
    return triplets, None


class TripletListView(generics.ListAPIView):
    """Staff only: triplets in id (consumption) order, filterable."""

    serializer_class = TripletSerializer
    permission_classes = [IsAdminUser]

    @extend_schema(parameters=TRIPLET_FILTERS)
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        triplets, error = filter_triplets(self.request.query_params)
        if error:
            raise serializers.ValidationError({"detail": error})
        return triplets


class TripletExportView(APIView):
    """Staff only: every matching triplet as JSON Lines (streamed)."""

    permission_classes = [IsAdminUser]

    @extend_schema(parameters=TRIPLET_FILTERS, responses={(200, "application/jsonl"): str})
    def get(self, request: Request):
        triplets, error = filter_triplets(request.query_params)
        if error:
            return Response({"detail": error}, status.HTTP_400_BAD_REQUEST)
        fields = ("id", "anchor_id", "positive_id", "negative_id", "source", "created_at")

        def lines():
            for row in triplets.values_list(*fields).iterator(chunk_size=2000):
                record = dict(zip(("id", "anchor", "positive", "negative", "source", "created_at"), row, strict=True))
                record["created_at"] = record["created_at"].isoformat()
                yield json.dumps(record) + "\n"

        response = StreamingHttpResponse(lines(), content_type="application/jsonl")
        response["Content-Disposition"] = 'attachment; filename="triplets.jsonl"'
        return response
