"""Staff dashboard (htmx): trigger retraining, watch progress, compare versions, roll back."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from webapp.feedback.models import Impression, Judgement, Triplet
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning import broker, claims, plots
from webapp.learning.forms import RetrainForm
from webapp.learning.models import TrainingRun
from webapp.learning.promotion import rollback
from webapp.learning.runs import start_run

KS = (1, 2, 4, 8, 16, 32)


def _context(form: RetrainForm | None = None) -> dict:
    return {
        "form": form or RetrainForm(),
        "counts": {
            "gallery images": Image.objects.filter(role=Image.Role.GALLERY).count(),
            "queries": Impression.objects.filter(offset=0).count(),
            "clicks": Judgement.objects.filter(kind=Judgement.Kind.CLICK).count(),
            "explicit verdicts": Judgement.objects.exclude(kind=Judgement.Kind.CLICK).count(),
            "triplets": Triplet.objects.count(),
        },
        "current": claims.holder(),
        "broker_problem": broker.problem(),
        "index_errors": IndexVersion.objects.exclude(load_error="").order_by("-id")[:5],
        "runs": TrainingRun.objects.select_related("candidate")[:20],
        "versions": version_rows(),
        "ks": KS,
    }


def version_rows() -> list[dict]:
    """Model versions with their report flattened for the table."""
    rows = []
    for version in ModelVersion.objects.all()[:30]:
        labelled = (version.metrics or {}).get("labelled") or {}
        feedback = (version.metrics or {}).get("feedback") or {}
        rows.append({
            "version": version,
            "recalls": [labelled.get(f"recall@{k}") for k in KS],
            "nmi": labelled.get("nmi"), "map_r": labelled.get("map@r"),
            "feedback_r1": feedback.get("recall@1"),
            "evidence": evidence_summary((version.metrics or {}).get("promotion_evidence")),
        })
    return rows


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
    run_id = request.GET.get("run")
    run = TrainingRun.objects.filter(pk=run_id).first() if run_id and run_id.isdigit() else claims.holder()
    return render(request, "learning/_progress.html", {"run": run})


@staff_member_required
@require_POST
def retrain(request: HttpRequest) -> HttpResponse:
    form = RetrainForm(request.POST)
    if not form.is_valid():
        return render(request, "learning/_progress.html", {"form_errors": form.errors}, status=400)
    try:
        run = start_run(form.cleaned_data["mode"], form.params(), user=request.user)
    except claims.TrainingBusy as exc:
        return render(request, "learning/_progress.html", {"busy": str(exc), "run": claims.holder()}, status=409)
    run.refresh_from_db()
    return render(request, "learning/_progress.html", {"run": run})


@staff_member_required
@require_POST
def rollback_version(request: HttpRequest, version_id: int) -> HttpResponse:
    version = get_object_or_404(ModelVersion, pk=version_id)
    rollback(version)
    return render(request, "learning/_versions.html", {**_context(), "notice": f"Version {version.pk} is active."})


@staff_member_required
@require_GET
def plot(request: HttpRequest, name: str) -> HttpResponse:
    draw = {"recall": plots.recall_plot, "alpha": plots.alpha_plot, "clicks": plots.clicks_plot}.get(name)
    if draw is None:
        return HttpResponse(status=404)
    response = HttpResponse(draw(), content_type="image/png")
    response["Cache-Control"] = "no-store"
    return response
