"""Staff gallery page (htmx): upload files / folders / archives, watch imports, select and remove, relabel,
rename, register watched folders. Uploads go to the API (static/gallery/upload.js → POST /api/v1/images/)."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from webapp.gallery import jobs
from webapp.gallery.models import Image, ImportJob, WatchedFolder
from webapp.gallery.removal import remove_images

PAGE_SIZE = 60


def _selected(request: HttpRequest) -> list[int]:
    return [int(i) for i in request.POST.getlist("ids") if i.isdigit()]


def _images_context(request: HttpRequest, notice: str = "") -> dict:
    images = Image.objects.filter(role=Image.Role.GALLERY).order_by("-id")
    label = (request.GET.get("label") or request.POST.get("filter_label") or "").strip()
    if label:
        images = images.filter(label=label)
    page = Paginator(images, PAGE_SIZE).get_page(request.GET.get("page") or request.POST.get("page"))
    return {"page": page, "label": label, "notice": notice, "total": images.count()}


@staff_member_required
@require_GET
def gallery(request: HttpRequest) -> HttpResponse:
    return render(request, "gallery/manage.html", {
        **_images_context(request), "jobs": _recent_jobs(), "folders": WatchedFolder.objects.all()})


@staff_member_required
@require_GET
def images(request: HttpRequest) -> HttpResponse:
    return render(request, "gallery/_images.html", _images_context(request))


def _recent_jobs() -> list[dict]:
    return [jobs.job_progress(job) for job in ImportJob.objects.all()[:8]]


@staff_member_required
@require_GET
def import_jobs(request: HttpRequest) -> HttpResponse:
    return render(request, "gallery/_jobs.html", {"jobs": _recent_jobs()})


@staff_member_required
@require_POST
def remove(request: HttpRequest) -> HttpResponse:
    removed = remove_images(_selected(request), roles=[Image.Role.GALLERY])
    return render(request, "gallery/_images.html", _images_context(request, f"Removed {removed} images."))


@staff_member_required
@require_POST
def relabel(request: HttpRequest) -> HttpResponse:
    label = request.POST.get("new_label", "").strip()[:200]
    changed = 0
    for image in Image.objects.filter(role=Image.Role.GALLERY, pk__in=_selected(request)):
        image.label = label
        image.save(update_fields=["label", "updated_at"])  # updated_at: reports name the gallery state
        changed += 1
    return render(request, "gallery/_images.html", _images_context(request, f"Relabelled {changed} images."))


@staff_member_required
@require_POST
def rename(request: HttpRequest, image_id: int) -> HttpResponse:
    image = get_object_or_404(Image, pk=image_id, role=Image.Role.GALLERY)
    image.original_name = request.POST.get("original_name", "").strip()[:255]
    image.save(update_fields=["original_name", "updated_at"])
    return render(request, "gallery/_images.html", _images_context(request, f"Renamed image {image.pk}."))


@staff_member_required
@require_POST
def add_folder(request: HttpRequest) -> HttpResponse:
    path = request.POST.get("path", "").strip()
    notice = ""
    if not path.startswith("/"):
        notice = "Give an absolute folder path on the server."
    else:
        WatchedFolder.objects.update_or_create(path=path, defaults={
            "labels_from_dirs": bool(request.POST.get("labels_from_dirs")),
            "withdraw_missing": bool(request.POST.get("withdraw_missing")), "enabled": True})
        notice = f"Watching {path}; beat scans it within a minute."
    return render(request, "gallery/_folders.html", {"folders": WatchedFolder.objects.all(), "notice": notice})


@staff_member_required
@require_POST
def drop_folder(request: HttpRequest, folder_id: int) -> HttpResponse:
    WatchedFolder.objects.filter(pk=folder_id).delete()
    return render(request, "gallery/_folders.html", {"folders": WatchedFolder.objects.all()})
