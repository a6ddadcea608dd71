"""The search pages (htmx): upload a query, see ranked thumbnails, show more, open one, find similar."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from webapp.feedback import impressions
from webapp.gallery.models import Image
from webapp.search import service
from webapp.search.refine import session_feedback
from webapp.throttling import throttled

PAGE_SIZE = settings.SEARCH_DEFAULT_K


def _results(request: HttpRequest, result: service.SearchResult) -> HttpResponse:
    impression = impressions.record(request, result)
    context = {"result": result, "impression": impression, "next_offset": result.offset + len(result.hits),
               "feedback": result.feedback}
    if request.htmx and result.offset > 0:
        return render(request, "search/_result_items.html", context)
    template = "search/_results.html" if request.htmx else "search/home.html"
    return render(request, template, context)


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    template = "search/_error.html" if request.htmx else "search/home.html"
    return render(request, template, {"error": message}, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "search/home.html", {"gallery_size": Image.objects.filter(role="gallery").count()})


@require_POST
@throttled("search")
def search_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("image")
    if upload is None:
        return _error(request, "Choose an image file to search with.")
    if upload.size > settings.MAX_UPLOAD_BYTES:
        return _error(request, f"The file is {upload.size / 1e6:.1f} MB; the limit is "
                               f"{settings.MAX_UPLOAD_BYTES / 1e6:.1f} MB.")
    try:
        result = service.search_upload(upload.read(), original_name=upload.name or "", k=PAGE_SIZE)
    except service.ImageRejected as exc:
        return _error(request, str(exc))
    except service.SearchUnavailable as exc:
        return _error(request, str(exc), status=503)
    return _results(request, result)


@require_GET
@throttled("search")
def search_similar(request: HttpRequest, image_id: int) -> HttpResponse:
    query = get_object_or_404(Image, pk=image_id)
    try:
        offset = max(0, min(int(request.GET.get("offset", 0)), 10_000))
    except ValueError:
        return _error(request, "offset must be a whole number.")
    # "Show more" and "Refine" rank with what this person marked on earlier pages of this query, if anything
    refine = offset > 0 or request.GET.get("refine") == "1"
    feedback = session_feedback(impressions.owned_by(request), query.pk) if refine else None
    try:
        result = service.search_similar(query, k=PAGE_SIZE, offset=offset, feedback=feedback)
    except service.SearchUnavailable as exc:
        return _error(request, str(exc), status=503)
    return _results(request, result)


@require_GET
def image_detail(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(Image, pk=image_id)
    return render(request, "search/image_detail.html", {"image": image})
