"""The staff gallery page: import progress, remove / relabel / rename a selection, watched folders."""

from __future__ import annotations

import pytest
from django.test import Client

from webapp.gallery.models import Image, WatchedFolder

pytestmark = pytest.mark.django_db


def test_the_page_is_staff_only_and_lists_images_and_imports(gallery, staff) -> None:
    assert Client().get("/dashboard/gallery/").status_code == 302  # to the login page
    page = staff.get("/dashboard/gallery/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Images (36)" in html and 'id="upload-form"' in html and "gallery/upload.js" in html
    jobs = staff.get("/dashboard/gallery/imports/").content.decode()
    assert "done" in jobs and "36 / 36" in jobs


def test_remove_relabel_and_rename_a_selection(gallery, staff) -> None:
    first, second, third = Image.objects.filter(role=Image.Role.GALLERY).order_by("id")[:3]
    answer = staff.post("/dashboard/gallery/relabel/", {"ids": [first.pk, second.pk], "new_label": "chosen"})
    assert "Relabelled 2 images." in answer.content.decode()
    assert set(Image.objects.filter(label="chosen").values_list("id", flat=True)) == {first.pk, second.pk}
    staff.post(f"/dashboard/gallery/{third.pk}/rename/", {"original_name": "Nice name"})
    third.refresh_from_db()
    assert third.original_name == "Nice name"
    answer = staff.post("/dashboard/gallery/remove/", {"ids": [first.pk, third.pk, "junk"]})
    assert "Removed 2 images." in answer.content.decode() and "Images (34)" in answer.content.decode()
    assert Image.objects.filter(role=Image.Role.REMOVED).count() == 2
    assert Client().post("/dashboard/gallery/remove/", {"ids": [second.pk]}).status_code == 302
    assert Image.objects.get(pk=second.pk).role == Image.Role.GALLERY


def test_watched_folders_are_added_and_dropped(db, staff, tmp_path) -> None:
    answer = staff.post("/dashboard/gallery/folders/", {"path": str(tmp_path), "withdraw_missing": "on"})
    assert "Watching" in answer.content.decode()
    folder = WatchedFolder.objects.get()
    assert folder.withdraw_missing and not folder.labels_from_dirs
    assert "absolute" in staff.post("/dashboard/gallery/folders/", {"path": "relative"}).content.decode()
    staff.post(f"/dashboard/gallery/folders/{folder.pk}/delete/")
    assert not WatchedFolder.objects.exists()
