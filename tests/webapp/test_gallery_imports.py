"""Uploads (files, zip, tar) through the API, import jobs in chunks (one index per import, resumable after a
crash, live progress), the command as a client, relabelling, and watched folders."""

from __future__ import annotations

import io
import tarfile
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from tests.imagefactory import image_bytes, truncated_jpeg
from tests.webapp.accounts import staff_api_client
from webapp.gallery import jobs, watching
from webapp.gallery.models import Image, ImportChunk, ImportJob, IndexVersion, WatchedFolder
from webapp.learning.evaluation import evaluate_version

pytestmark = pytest.mark.django_db


def _file(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def _colour(i: int) -> bytes:
    return image_bytes("PNG", (64, 64), colour=(20 * i % 256, 255 - 7 * i % 256, 90))


def test_upload_one_file_with_a_label(db, eager_tasks) -> None:
    body = staff_api_client().post("/api/v1/images/", {"files": [_file("a.png", _colour(1))], "label": "red"},
                         format="multipart")
    assert body.status_code == 202, body.content
    job = body.json()
    assert (job["status"], job["total"], job["imported"], job["failed"]) == ("done", 1, 1, 0)
    image = Image.objects.get(original_name="a.png")
    assert image.label == "red" and image.role == Image.Role.GALLERY
    assert IndexVersion.objects.get(is_active=True).pk == job["index_version"]
    assert not default_storage.listdir("imports")[1] and not any(
        default_storage.listdir(f"imports/{d}")[1] for d in default_storage.listdir("imports")[0])  # staging gone


def test_upload_many_files_reports_each_bad_one_and_duplicates(db, eager_tasks) -> None:
    files = [_file(f"ok{i}.png", _colour(i)) for i in range(3)] + [
        _file("dup.png", _colour(0)), _file("broken.jpg", truncated_jpeg()), _file("text.png", b"not an image"),
        _file("tiny.png", image_bytes("PNG", (8, 8)))]
    job = staff_api_client().post("/api/v1/images/", {"files": files}, format="multipart").json()
    assert (job["total"], job["imported"], job["duplicates"], job["failed"]) == (7, 3, 1, 3)
    reasons = {error["file"]: error["reason"] for error in job["errors"]}
    assert set(reasons) == {"broken.jpg", "text.png", "tiny.png"}
    assert "damaged or truncated" in reasons["broken.jpg"]
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 3
    assert staff_api_client().get(f"/api/v1/imports/{job['id']}/").json()["errors"] == job["errors"]


def test_upload_zip_and_tar_archives_with_labels_from_their_folders(db, eager_tasks) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("cats/one.png", _colour(1))
        archive.writestr("dogs/two.png", _colour(2))
        archive.writestr("readme.txt", "ignored")
        archive.writestr("dogs/bad.jpg", b"garbage")
    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w:gz") as archive:
        for name, data in (("birds/three.png", _colour(3)), ("birds/four.png", _colour(4))):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("birds/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        archive.addfile(link)
    job = staff_api_client().post("/api/v1/images/", {
        "files": [_file("set.zip", zipped.getvalue()), _file("set.tar.gz", tarred.getvalue())],
        "labels_from_dirs": "true"}, format="multipart").json()
    assert (job["imported"], job["failed"]) == (4, 2), job
    assert {e["file"] for e in job["errors"]} == {"bad.jpg", "birds/link.png"}
    assert dict(Image.objects.values_list("original_name", "label")) == {
        "one.png": "cats", "two.png": "dogs", "three.png": "birds", "four.png": "birds"}


def test_a_damaged_archive_is_a_400_and_nothing_is_staged(db) -> None:
    response = staff_api_client().post("/api/v1/images/", {"files": [_file("x.zip", b"PK\x03\x04broken")]},
                                       format="multipart")
    assert response.status_code == 400 and "archive" in response.json()["detail"]
    assert not ImportJob.objects.exists()


def test_only_staff_upload(db) -> None:
    response = APIClient().post("/api/v1/images/", {"files": [_file("a.png", _colour(1))]}, format="multipart")
    assert response.status_code in (401, 403)
    assert not Image.objects.exists()


def test_an_import_is_split_into_chunks_and_indexed_once(demo_folder: Path, settings) -> None:
    settings.IMPORT_CHUNK_SIZE = 10
    job = jobs.start_folder_import(demo_folder, labels_from_dirs=True, send=False)
    chunk_ids = list(job.chunks.values_list("id", flat=True))
    assert len(chunk_ids) == 4 and job.total == 36
    for chunk_id in chunk_ids[:3]:
        assert jobs.run_chunk(chunk_id) == "done"
        assert not IndexVersion.objects.exists()  # no index per chunk
        assert jobs.run_chunk(chunk_id) == "not claimed"  # a redelivered task finds it done
    state = jobs.job_progress(job)
    assert (state["done"], state["imported"], state["status"]) == (30, 30, "running")
    assert state["images_per_second"] > 0 and state["seconds_left"] is not None
    jobs.run_chunk(chunk_ids[3])
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and IndexVersion.objects.count() == 1
    assert IndexVersion.objects.get(is_active=True).ntotal == 36 and job.index_version is not None


def test_a_chunk_whose_worker_died_is_resent_by_housekeeping_and_the_job_finishes(demo_folder: Path, settings,
                                                                                   eager_tasks) -> None:
    settings.IMPORT_CHUNK_SIZE = 20
    job = jobs.start_folder_import(demo_folder, labels_from_dirs=True, send=False)
    first, second = job.chunks.order_by("number")
    assert jobs.run_chunk(first.pk) == "done"
    assert jobs.claim(second.pk)  # a worker took it ... and died: its heartbeat stops
    assert not jobs.claim(second.pk)  # nobody else takes a chunk while its worker beats
    assert jobs.resend_stalled() == []
    ImportChunk.objects.filter(pk=second.pk).update(
        heartbeat_at=timezone.now() - timedelta(seconds=settings.IMPORT_STALE_SECONDS + 1))
    assert jobs.resend_stalled() == [second.pk]  # eager: the re-sent task runs here
    job.refresh_from_db()
    second.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and second.attempts == 2
    assert Image.objects.count() == 36 and IndexVersion.objects.get(is_active=True).ntotal == 36


def test_the_command_is_a_client_of_the_jobs_and_prints_progress(demo_folder: Path, capsys, settings) -> None:
    settings.IMPORT_CHUNK_SIZE = 8
    call_command("import_images", str(demo_folder), "--labels-from-dirs", verbosity=0)
    out = capsys.readouterr().out
    job = ImportJob.objects.get()
    assert f"Import job {job.pk}: 36 files in 5 chunks." in out
    assert "36 image files: 36 imported, 0 already present, 0 failed." in out
    assert job.status == ImportJob.Status.DONE and ImportChunk.objects.filter(status="done").count() == 5


def test_relabel_and_rename_change_what_reports_are_measured_on(gallery, settings) -> None:
    image = Image.objects.get(original_name="gravel-000.jpg")
    version = IndexVersion.objects.get(is_active=True).model_version
    before = evaluate_version(version)["gallery"]
    response = staff_api_client().patch(f"/api/v1/images/{image.pk}/", {"label": "sand", "original_name": "Beach"},
                              format="json")
    assert response.status_code == 200 and response.json()["label"] == "sand"
    image.refresh_from_db()
    assert (image.label, image.original_name) == ("sand", "Beach")
    after = evaluate_version(version)["gallery"]
    assert after["digest"] != before["digest"] and after["images"] == before["images"] == 36
    too_long = staff_api_client().patch(f"/api/v1/images/{image.pk}/", {"label": "x" * 300}, format="json")
    assert too_long.status_code == 400
    assert APIClient().patch(f"/api/v1/images/{image.pk}/", {"label": "y"}, format="json").status_code in (401, 403)


def test_a_watched_folder_imports_new_files_and_withdraws_only_when_asked(tmp_path: Path, db, eager_tasks) -> None:
    folder = tmp_path / "watched"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.png").write_bytes(_colour(i))
    watched = WatchedFolder.objects.create(path=str(folder))
    assert len(watching.scan_all()) == 1
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 3
    assert watching.scan_all() == []  # nothing new: no job
    (folder / "3.png").write_bytes(_colour(3))
    (folder / "0.png").unlink()
    assert len(watching.scan_all()) == 1
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 4  # withdrawal is off by default
    watched.withdraw_missing = True
    watched.save()
    watching.scan_all()
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 3
    assert not Image.objects.filter(role=Image.Role.GALLERY, source=str(folder / "0.png")).exists()
    watched.refresh_from_db()
    assert "1 withdrawn" in watched.last_scan


def test_a_missing_watched_folder_withdraws_nothing_and_settings_register_folders(tmp_path: Path, db, settings,
                                                                                 eager_tasks) -> None:
    folder = tmp_path / "share"
    folder.mkdir()
    (folder / "a.png").write_bytes(_colour(5))
    settings.WATCHED_FOLDERS = [str(folder)]
    settings.WATCH_WITHDRAW_MISSING = True
    watching.scan_all()
    registered = WatchedFolder.objects.get()
    assert registered.from_settings and registered.withdraw_missing
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 1
    (folder / "a.png").unlink()
    folder.rmdir()  # an unmounted share
    watching.scan_all()
    assert Image.objects.filter(role=Image.Role.GALLERY).count() == 1
