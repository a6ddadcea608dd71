"""The search pages (htmx): upload a query, see ranked thumbnails, show more, open one, find similar.

Every results page has a URL: an upload answers with the query's own results URL (`HX-Push-Url`), and
"find similar" / "show more" push theirs, so Back, Forward, reload and bookmarks work.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from retrieval.images import size_message
from webapp.errors import ANSWERED, status_of
from webapp.feedback import impressions
from webapp.feedback.models import Impression
from webapp.feedback.triplets import live_verdicts
from webapp.gallery import privacy
from webapp.gallery.models import Image
from webapp.search import service
from webapp.search.refine import session_feedback
from webapp.throttling import throttled

PAGE_SIZE = settings.SEARCH_DEFAULT_K
MAX_OFFSET = 10_000


def _results(request: HttpRequest, result: service.SearchResult, weak_shown: bool = False) -> HttpResponse:
    impression = impressions.record(request, result)
    cutoff = settings.RELEVANCE_CUTOFF
    strong = [hit for hit in result.hits if hit.score >= cutoff]
    first_weak = next((hit.image.pk for hit in result.hits if hit.score < cutoff), None)
    context = {
        "result": result, "impression": impression, "next_offset": result.offset + len(result.hits),
        "cutoff": cutoff, "strong_count": len(strong), "first_weak": None if weak_shown else first_weak,
        "weak_shown": weak_shown or first_weak is not None, "results_url": _results_url(result.query, 0),
        "gallery_size": _gallery_size(), "feedback": result.feedback,
    }
    fragment = request.htmx and not request.htmx.history_restore_request
    if fragment and result.offset > 0:
        response = render(request, "search/_result_items.html", context)
    else:
        response = render(request, "search/_results.html" if fragment else "search/home.html", context)
    if request.htmx and request.method == "POST":  # an upload: its results have a URL from now on
        response["HX-Push-Url"] = _results_url(result.query, 0)
    return response


def _results_url(query: Image, offset: int) -> str:
    url = reverse("search:similar", args=[query.pk])
    return f"{url}?offset={offset}" if offset else url


def _gallery_size() -> int:
    return Image.objects.filter(role=Image.Role.GALLERY).count()


def _error(request: HttpRequest, message: str, status: int = 400) -> HttpResponse:
    fragment = request.htmx and not request.htmx.history_restore_request
    template = "search/_error.html" if fragment else "search/home.html"
    return render(request, template, {"error": message, "gallery_size": _gallery_size()}, status=status)


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "search/home.html", {"gallery_size": _gallery_size()})


@require_POST
@throttled("search")
def search_upload(request: HttpRequest) -> HttpResponse:
    upload = request.FILES.get("image")
    if upload is None:
        return _error(request, _("Choose an image file to search with."))
    if upload.size > settings.MAX_UPLOAD_BYTES:
        return _error(request, size_message(upload.size, settings.MAX_UPLOAD_BYTES))
    try:
        result = service.search_upload(upload.read(), original_name=upload.name or "", k=PAGE_SIZE)
    except ANSWERED as exc:
        return _error(request, str(exc), status=status_of(exc))
    privacy.record_upload(result.query, request, upload.name or "")
    return _results(request, result)


@require_GET
@throttled("search")
def search_similar(request: HttpRequest, image_id: int) -> HttpResponse:
    query = privacy.visible_or_404(request, image_id)
    try:
        offset = int(request.GET.get("offset", 0))
    except ValueError:
        return _error(request, _("offset must be a whole number."))
    if not 0 <= offset <= MAX_OFFSET:
        return _error(request, _("offset must be between 0 and %(max)d.") % {"max": MAX_OFFSET})
    # "Show more" and "Refine" rank with what this person marked on earlier pages of this query, if anything
    refine = offset > 0 or request.GET.get("refine") == "1"
    feedback = session_feedback(impressions.owned_by(request), query.pk) if refine else None
    try:
        result = service.search_similar(query, k=PAGE_SIZE, offset=offset, feedback=feedback)
    except ANSWERED as exc:
        return _error(request, str(exc), status=status_of(exc))
    if offset and not result.hits:
        return _error(request, _("No more results: every similar image is already shown (the gallery has "
                                 "%(count)d images).") % {"count": _gallery_size()}, status=404)
    return _results(request, result, weak_shown=request.GET.get("weak") == "1")


@require_GET
def image_detail(request: HttpRequest, image_id: int) -> HttpResponse:
    """An image on its own page; opened from a results page (`?impression=`), with its verdict buttons and a
    way back to those results."""
    image = privacy.visible_or_404(request, image_id)
    context: dict = {"image": image}
    impression = _own_impression(request, request.GET.get("impression"), image_id)
    if impression is not None:
        context.update(impression=impression, verdict=live_verdicts(impression).get(image_id),
                       back_url=_results_url(impression.query, impression.offset), rank=impression.rank_of(image_id))
    return render(request, "search/image_detail.html", context)


def _own_impression(request: HttpRequest, value: str | None, image_id: int) -> Impression | None:
    try:
        impression = impressions.owned_by(request).filter(pk=int(value or "")).first()
    except ValueError:
        return None
    return impression if impression is not None and impression.rank_of(image_id) is not None else None
