"""htmx endpoints behind each result: open it (a click), mark it similar / not similar or undo, browse the viewer."""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from webapp.feedback import impressions
from webapp.feedback.models import Impression, Judgement
from webapp.feedback.tasks import request_derivation
from webapp.feedback.triplets import FeedbackRejected, live_verdicts, store_judgement, undo_verdict
from webapp.gallery.models import Image
from webapp.throttling import throttled

UNDO = "undo"


@require_POST
@throttled("feedback")
def judge(request: HttpRequest) -> HttpResponse:
    """A click (with `view`: answers the viewer), a verdict or `undo`: answers the result's verdict buttons."""
    kind = request.POST.get("judgement", "")
    if kind not in (*Judgement.Kind.values, UNDO):
        return _ack(request, _("Unknown judgement."), status=400)
    impression, image_id, error = _target(request, request.POST)
    if error:
        return error
    try:
        if kind == UNDO:
            undone = undo_verdict(impression, image_id) is not None
            message = _("Verdict removed") if undone else _("No verdict to undo")
        else:
            recorded = store_judgement(impression, image_id, kind)
            if recorded.created:
                transaction.on_commit(request_derivation)
            message = {"click": _("Click noted"), "similar": _("Marked similar"),
                       "dissimilar": _("Marked not similar")}[kind]
            message += "" if recorded.created else " " + _("(already)")
    except FeedbackRejected as exc:
        return _ack(request, str(exc), status=400)
    if kind == "click" and request.POST.get("view"):  # a click on a thumbnail also opens the image large
        return _viewer(request, impression, image_id, message)
    context = {"impression": impression, "image_id": image_id, "verdict": live_verdicts(impression).get(image_id),
               "message": message, "ok": True}
    return render(request, "feedback/_verdicts.html", context)


@require_GET
def viewer(request: HttpRequest) -> HttpResponse:
    """The viewer of one result of one of your results pages, without recording a click (previous / next)."""
    impression, image_id, error = _target(request, request.GET)
    return error or _viewer(request, impression, image_id, "")


def _viewer(request: HttpRequest, impression: Impression, image_id: int, message: str) -> HttpResponse:
    image = Image.objects.get(pk=image_id)
    try:
        score = float(request.POST.get("score") or request.GET.get("score") or "nan")
    except ValueError:
        score = float("nan")
    context = {"image": image, "impression": impression, "rank": impression.rank_of(image_id),
               "score": None if score != score else score,  # display only: the score the page showed
               "verdict": live_verdicts(impression).get(image_id), "message": message, "ok": True}
    return render(request, "feedback/_viewer.html", context)


def _target(request: HttpRequest, params) -> tuple[Impression | None, int, HttpResponse | None]:
    """(impression, image id, None), or an error response: unreadable, not yours, or not shown there."""
    try:
        impression_id, image_id = int(params["impression"]), int(params["image"])
    except (KeyError, ValueError):
        return None, 0, _ack(request, _("That judgement could not be read."), status=400)
    impression = impressions.owned_by(request).filter(pk=impression_id).first()
    if impression is None:
        return None, 0, _ack(request, _("This results page is not yours or has expired."), status=404)
    if impression.rank_of(image_id) is None:
        return None, 0, _ack(request, _("That image was not shown on this results page."), status=400)
    return impression, image_id, None


def _ack(request: HttpRequest, message: str, status: int = 200, ok: bool = False) -> HttpResponse:
    return render(request, "feedback/_ack.html", {"message": message, "ok": ok}, status=status)
