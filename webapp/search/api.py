"""POST /api/v1/search/: search the gallery with an uploaded image."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from retrieval.images import size_message
from webapp.feedback import impressions
from webapp.gallery import privacy
from webapp.gallery.serializers import image_urls
from webapp.params import MAX_ID
from webapp.search import service
from webapp.search.refine import session_feedback
from webapp.throttling import ClientThrottle


class SearchRequestSerializer(serializers.Serializer):
    image = serializers.FileField(help_text="The query image (JPEG, PNG, WebP, GIF, BMP or TIFF).")
    k = serializers.IntegerField(
        required=False, default=settings.SEARCH_DEFAULT_K, min_value=1, max_value=settings.SEARCH_MAX_K
    )

    def validate_image(self, upload):
        if upload.size > settings.MAX_UPLOAD_BYTES:
            raise serializers.ValidationError(size_message(upload.size, settings.MAX_UPLOAD_BYTES))
        return upload


class SearchHitSerializer(serializers.Serializer):
    image_id = serializers.IntegerField()
    rank = serializers.IntegerField()
    score = serializers.FloatField()
    label = serializers.CharField(allow_null=True)
    image_url = serializers.URLField()
    thumbnail_url = serializers.URLField()


class SearchResponseSerializer(serializers.Serializer):
    query_id = serializers.IntegerField()
    impression_id = serializers.IntegerField(help_text="Pass it with feedback on these results.")
    model_version = serializers.IntegerField()
    index_version = serializers.IntegerField()
    results = SearchHitSerializer(many=True)


class RefinedSerializer(serializers.Serializer):
    positives = serializers.IntegerField(help_text="Results you marked similar or clicked.")
    negatives = serializers.IntegerField(help_text="Results you marked not similar or skipped above a positive.")
    excluded = serializers.IntegerField(help_text="Results already shown to you for this query (left out).")


class RefineRequestSerializer(serializers.Serializer):
    query_id = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The query_id of your search.")
    k = serializers.IntegerField(
        required=False, default=settings.SEARCH_DEFAULT_K, min_value=1, max_value=settings.SEARCH_MAX_K
    )


class RefineResponseSerializer(SearchResponseSerializer):
    refined = RefinedSerializer(allow_null=True, help_text="null: nothing marked yet, the plain next page.")


ERROR = inline_serializer("Error", {"detail": serializers.CharField()})


def _body(request: Request, result: service.SearchResult, impression) -> dict:
    return {
        "query_id": result.query.pk,
        "impression_id": impression.pk,
        "model_version": result.model_version.pk,
        "index_version": result.index_version,
        "results": [
            {"image_id": hit.image.pk, "rank": hit.rank, "score": hit.score, "label": hit.image.label or None,
             **image_urls(request, hit.image)}
            for hit in result.hits
        ],
    }


class SearchView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [ClientThrottle]
    throttle_scope = "search"

    @extend_schema(
        request=SearchRequestSerializer,
        responses={
            200: SearchResponseSerializer,
            400: OpenApiResponse(ERROR, description="Not a usable image, or bad parameters."),
            429: OpenApiResponse(ERROR, description="Rate limit (REFIND_THROTTLE_SEARCH)."),
            503: OpenApiResponse(ERROR, description="No index is active yet."),
        },
        summary="Search the gallery with an image",
    )
    def post(self, request: Request) -> Response:
        params = SearchRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        upload = params.validated_data["image"]
        result = service.search_upload(upload.read(), upload.name or "", k=params.validated_data["k"])
        privacy.record_upload(result.query, request, upload.name or "")
        return Response(_body(request, result, impressions.record(request, result)))


class RefineView(APIView):
    throttle_classes = [ClientThrottle]
    throttle_scope = "search"

    @extend_schema(
        request=RefineRequestSerializer,
        responses={
            200: RefineResponseSerializer,
            400: OpenApiResponse(ERROR, description="Bad parameters."),
            404: OpenApiResponse(ERROR, description="You have not searched with this query."),
            429: OpenApiResponse(ERROR, description="Rate limit (REFIND_THROTTLE_SEARCH)."),
            503: OpenApiResponse(ERROR, description="No index is active yet."),
        },
        summary="The next page of a search, ranked with what you marked (in-session relevance feedback)",
        description=(
            "Your similar / not-similar marks and clicks on the pages of `query_id` move the query (Rocchio: "
            "query + mean of positives - 1/2 mean of negatives, where results skipped above a positive count "
            "as negatives); the answer holds the best `k` results not shown to you yet for this query, as a "
            "new impression you can judge too. Without marks it is the plain next page."
        ),
    )
    def post(self, request: Request) -> Response:
        params = RefineRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        mine = impressions.owned_by(request).filter(query_id=params.validated_data["query_id"])
        latest = mine.select_related("query").order_by("-id").first()
        if latest is None:
            return Response({"detail": "You have not searched with this query."}, status=status.HTTP_404_NOT_FOUND)
        feedback = session_feedback(mine, latest.query_id)
        k = params.validated_data["k"]
        if feedback:
            result = service.search_similar(latest.query, k=k, offset=len(feedback.shown), feedback=feedback)
        else:
            result = service.search_similar(latest.query, k=k, offset=latest.offset + len(latest.shown))
        body = _body(request, result, impressions.record(request, result))
        body["refined"] = None if not feedback else {
            "positives": len(feedback.positives), "negatives": len(feedback.negatives),
            "excluded": len(feedback.shown)}
        return Response(body)
