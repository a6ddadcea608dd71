"""import_images: stores, de-duplicates, resumes, labels from folders, survives bad files, builds the index."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command

from tests.imagefactory import bomb_png, image_bytes, truncated_jpeg
from webapp.gallery.jobs import import_tree
from webapp.gallery.models import Image, IndexVersion
from webapp.runtime import runtime

pytestmark = pytest.mark.django_db


def test_import_stores_files_features_labels_and_activates_an_index(demo_folder: Path, data_dir: Path) -> None:
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert (report.found, report.imported, report.skipped, report.failed) == (36, 36, 0, [])
    images = Image.objects.all()
    assert images.count() == 36
    assert set(images.values_list("label", flat=True)) == {p.name for p in demo_folder.iterdir()}
    for image in images[:5]:
        assert (data_dir / "media" / image.file.name).exists()
        assert (data_dir / "media" / image.thumbnail.name).exists()
    ids = np.array(list(images.values_list("id", flat=True)))
    assert runtime.feature_store().contains(ids).all()
    active = IndexVersion.objects.get(is_active=True)
    assert active.ntotal == 36 and (data_dir / active.path).exists()


def test_duplicates_by_content_are_stored_once(demo_folder: Path) -> None:
    first = next(demo_folder.glob("gravel/*.jpg"))
    shutil.copy(first, demo_folder / "gravel" / "copy-of-first.jpg")
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert report.found == 37 and report.imported == 36 and report.skipped == 1
    assert Image.objects.count() == 36


def test_rerun_skips_everything_without_a_new_index(demo_folder: Path) -> None:
    import_tree(demo_folder, labels_from_dirs=True)
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert (report.imported, report.skipped, report.index_version) == (0, 36, None)
    assert IndexVersion.objects.count() == 1


def test_resume_embeds_images_stored_before_a_crash(demo_folder: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real_append = runtime.feature_store().append

    def crash_on_second_batch(ids, vectors):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        real_append(ids, vectors)

    monkeypatch.setattr(runtime.feature_store(), "append", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        import_tree(demo_folder, labels_from_dirs=True)
    monkeypatch.undo()
    stored_before = Image.objects.count()
    assert 0 < len(runtime.feature_store()) < stored_before <= 36  # rows exist without features
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert report.imported + report.skipped == 36 and not report.failed
    assert Image.objects.count() == 36
    assert len(runtime.feature_store()) == 36
    assert IndexVersion.objects.get(is_active=True).ntotal == 36


def test_bad_files_are_reported_and_skipped(demo_folder: Path) -> None:
    bad = demo_folder / "bad"
    bad.mkdir()
    (bad / "empty.jpg").write_bytes(b"")
    (bad / "text.png").write_bytes(b"hello, not an image")
    (bad / "truncated.jpg").write_bytes(truncated_jpeg())
    (bad / "bomb.png").write_bytes(bomb_png())
    (bad / "tiny.png").write_bytes(image_bytes("PNG", (8, 8)))
    (bad / "notes.txt").write_text("ignored: not an image extension")
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert report.imported == 36
    assert sorted(Path(f).name for f, _ in report.failed) == ["bomb.png", "empty.jpg", "text.png", "tiny.png",
                                                               "truncated.jpg"]
    assert Image.objects.filter(label="bad").count() == 0


def test_symlinks_that_escape_the_root_are_refused(demo_folder: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(image_bytes("PNG"))
    (demo_folder / "gravel" / "link.png").symlink_to(outside)
    report = import_tree(demo_folder, labels_from_dirs=True)
    assert any("outside" in reason for _, reason in report.failed)
    assert not Image.objects.filter(original_name="link.png").exists()


def test_command_prints_a_summary_and_the_failures(demo_folder: Path, capsys) -> None:
    (demo_folder / "broken.jpg").write_bytes(truncated_jpeg())
    call_command("import_images", str(demo_folder), "--labels-from-dirs", verbosity=0)
    out = capsys.readouterr().out
    assert "37 image files: 36 imported, 0 already present, 1 failed." in out
    assert "broken.jpg: The image is damaged or truncated" in out
