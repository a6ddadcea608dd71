"""Staff dashboard (htmx): trigger retraining, watch progress, compare versions, roll back."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from webapp import broker, dispatch
from webapp.errors import ANSWERED, status_of
from webapp.feedback.models import Impression, Judgement, Triplet
from webapp.gallery.demo import demo_image_ids
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.gallery.removal import remove_images
from webapp.gallery.state import gallery_state
from webapp.learning import claims, plots, silence
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import InvalidParameters, RetrainForm, RunParameters
from webapp.learning.promotion import VersionUnavailable, rollback
from webapp.learning.runs import cancel, start_run
from webapp.params import whole_number

KS = (1, 2, 4, 8, 16, 32)


def _context() -> dict:
    return {
        "form": RetrainForm(),
        "counts": {
            _("gallery images"): Image.objects.filter(role=Image.Role.GALLERY).count(),
            _("queries"): Impression.objects.filter(offset=0).count(),
            _("clicks"): Judgement.objects.filter(kind=Judgement.Kind.CLICK).count(),
            _("explicit verdicts"): Judgement.objects.exclude(kind=Judgement.Kind.CLICK).count(),
            _("triplets"): Triplet.objects.count(),
        },
        "demo": _demo_summary(),
        "current": claims.holder(),
        "broker_problem": (problem := broker.problem()),
        "workers_silent_minutes": None if problem else silence.workers_silent_minutes(),
        "index_errors": IndexVersion.objects.exclude(load_error="").order_by("-id")[:5],
        "runs": TrainingRun.objects.select_related("candidate")[:20],
        "versions": version_rows(),
        "ks": KS,
    }


def version_rows() -> list[dict]:
    """Model versions with their report flattened for the table."""
    rows = []
    current = gallery_state()
    for version in ModelVersion.objects.all()[:30]:
        labelled = (version.metrics or {}).get("labelled") or {}
        feedback = (version.metrics or {}).get("feedback") or {}
        rows.append({
            "version": version, "measured_on": measured_on(labelled), "stale": stale(version, current),
            "recalls": [labelled.get(f"recall@{k}") for k in KS],
            "nmi": labelled.get("nmi"), "map_r": labelled.get("map@r"),
            "feedback_r1": feedback.get("recall@1"),
            "evidence": evidence_summary((version.metrics or {}).get("promotion_evidence")),
        })
    return rows


def measured_on(labelled: dict) -> str:
    """What a version's Recall@K was measured on, in words."""
    if not labelled.get("queries"):
        return ""
    return _("%(queries)d queries against %(gallery)d images (%(protocol)s)") % {
        "queries": labelled["queries"], "gallery": labelled.get("gallery", 0), "protocol": labelled.get("protocol", "")}


def stale(version: ModelVersion, current: dict) -> bool:
    """Whether the version was scored on another gallery than today's (its figures are not comparable)."""
    metrics = version.metrics or {}
    return bool(metrics.get("labelled")) and metrics.get("gallery") != current


def evidence_summary(evidence: dict | None) -> str:
    """The guard's paired evidence in one line: difference, interval, discordant queries, McNemar p."""
    if not evidence:
        return ""
    return (f"{evidence['difference']:+.2f} pts [{evidence['low']:+.2f}, {evidence['high']:+.2f}] "
            f"on {evidence['queries']} {evidence['kind']} queries; {evidence['better']} better, "
            f"{evidence['worse']} worse (min {evidence['min_discordant']} differing), p = {evidence['p_value']:.2g}")


@staff_member_required
@require_GET
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "learning/dashboard.html", _context())


@staff_member_required
@require_GET
def progress(request: HttpRequest) -> HttpResponse:
    run_id = whole_number(request.GET.get("run"), minimum=1)
    run = TrainingRun.objects.filter(pk=run_id).first() if run_id is not None else claims.holder()
    busy = _("A training run is in progress; start another when it has finished.") if request.GET.get("refused") else ""
    return render(request, "learning/_progress.html", {"run": run, "busy": busy})


@staff_member_required
@require_POST
def retrain(request: HttpRequest) -> HttpResponse:
    try:
        run = start_run(RunParameters.parse(request.POST), user=request.user)
    except InvalidParameters as exc:
        return render(request, "learning/_progress.html", {"form_errors": exc.errors}, status=status_of(exc))
    except ANSWERED as exc:
        return render(request, "learning/_progress.html", {"busy": str(exc), "run": claims.holder()},
                      status=status_of(exc))
    run.refresh_from_db()
    return render(request, "learning/_progress.html", {"run": run})


@staff_member_required
@require_POST
def cancel_run(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(TrainingRun, pk=run_id)
    try:
        run = cancel(run, request.user)
    except ANSWERED as exc:
        return render(request, "learning/_progress.html", {"busy": str(exc), "run": run}, status=status_of(exc))
    return render(request, "learning/_progress.html", {"run": run})


@staff_member_required
@require_POST
def rollback_version(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=version_id)
    try:
        rollback(version)
    except VersionUnavailable as exc:
        return render(request, "learning/_versions.html",
                      {**_context(), "notice": f"Version {version.pk} cannot be served. {exc}"}, status=409)
    return render(request, "learning/_versions.html", {**_context(), "notice": f"Version {version.pk} is active."})


def _demo_summary() -> dict | None:
    """{"images": N} when the demo gallery can be removed: it is there and the user has imported their own."""
    demo = demo_image_ids()
    own = Image.objects.filter(role=Image.Role.GALLERY).exclude(pk__in=demo).exists()
    return {"images": len(demo)} if demo and own else None


@staff_member_required
@require_POST
def remove_demo(request: HttpRequest) -> HttpResponse:
    """Remove the demo gallery once the user's own images are in (webapp/gallery/removal.py)."""
    if _demo_summary() is None:
        return HttpResponse(_("There is no demo gallery to remove, or no image of your own yet."), status=400)
    removed = remove_images(demo_image_ids(), roles=[Image.Role.GALLERY])
    message = _("Removed the %(count)d demo images; they are gone from results now.") % {"count": removed}
    return HttpResponse(f'<p class="ack ok" role="status">{escape(message)}</p>')


@staff_member_required
@require_POST
def rescore(request: HttpRequest) -> HttpResponse:
    """Re-evaluate every version scored on another gallery than today's (queued on the worker)."""
    current = gallery_state()
    queued = [version.pk for version in ModelVersion.objects.all()[:30] if stale(version, current)]
    for version_id in queued:
        dispatch.send_evaluation(version_id)  # broker down: logged; the button can be pressed again
    notice = (_("Re-scoring %(count)d versions on the current gallery; refresh in a moment.") % {"count": len(queued)}
              if queued else _("Every version is already scored on the current gallery."))
    return render(request, "learning/_versions.html", {**_context(), "notice": notice})


@staff_member_required
@require_GET
def plot(request: HttpRequest, name: str) -> HttpResponse:
    draw = {"recall": plots.recall_plot, "alpha": plots.alpha_plot, "clicks": plots.clicks_plot}.get(name)
    if draw is None:
        return HttpResponse(status=404)
    response = HttpResponse(draw(), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
