"""htmx endpoint behind each result's click / similar / not similar controls."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from webapp.feedback import impressions
from webapp.feedback.models import Judgement
from webapp.feedback.triplets import FeedbackConflict, FeedbackRejected, record_judgement
from webapp.throttling import throttled


@require_POST
@throttled("feedback")
def judge(request: HttpRequest) -> HttpResponse:
    kind = request.POST.get("judgement", "")
    try:
        impression_id, image_id = int(request.POST["impression"]), int(request.POST["image"])
    except (KeyError, ValueError):
        return _ack(request, "That judgement could not be read.", status=400)
    if kind not in Judgement.Kind.values:
        return _ack(request, "Unknown judgement.", status=400)
    impression = impressions.owned_by(request).filter(pk=impression_id).first()
    if impression is None:
        return _ack(request, "This results page is not yours or has expired.", status=404)
    try:
        recorded = record_judgement(impression, image_id, kind)
    except FeedbackConflict as exc:
        return _ack(request, str(exc), status=409)
    except FeedbackRejected as exc:
        return _ack(request, str(exc), status=400)
    message = {"click": "Click noted", "similar": "Marked similar", "dissimilar": "Marked not similar"}[kind]
    message += "" if recorded.created else " (already)"
    if request.POST.get("view"):  # a click on a thumbnail also opens the image large
        context = {"image": recorded.judgement.image, "message": message, "ok": True}
        return render(request, "feedback/_viewer.html", context)
    return _ack(request, message, ok=True)


def _ack(request: HttpRequest, message: str, status: int = 200, ok: bool = False) -> HttpResponse:
    return render(request, "feedback/_ack.html", {"message": message, "ok": ok}, status=status)
