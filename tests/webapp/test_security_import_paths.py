"""`import_images PATH` reads only files inside PATH: symlinks (files or folders) that leave it are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from tests.imagefactory import image_bytes
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder next to the import root holding an image that must never be imported."""
    folder = tmp_path / "private"
    folder.mkdir()
    (folder / "secret.png").write_bytes(image_bytes("PNG", colour=(201, 13, 77)))
    return folder


def test_a_symlinked_file_that_escapes_is_reported_and_not_imported(demo_folder: Path, outside: Path,
                                                                      capsys) -> None:
    (demo_folder / "gravel" / "leak.png").symlink_to(outside / "secret.png")
    call_command("import_images", str(demo_folder), "--labels-from-dirs", verbosity=0)
    out = capsys.readouterr().out
    assert "1 failed" in out and f"leak.png: symlink points outside {demo_folder.resolve()}" in out
    assert not Image.objects.filter(original_name__in=["leak.png", "secret.png"]).exists()
    assert Image.objects.count() == 36


def test_a_symlinked_folder_that_escapes_is_not_followed(demo_folder: Path, outside: Path, capsys) -> None:
    (demo_folder / "elsewhere").symlink_to(outside, target_is_directory=True)
    call_command("import_images", str(demo_folder), "--labels-from-dirs", verbosity=0)
    assert "36 imported" in capsys.readouterr().out
    assert not Image.objects.filter(label="elsewhere").exists()


def test_dot_dot_paths_resolve_to_their_real_folder(demo_folder: Path, outside: Path) -> None:
    """A root spelled with `..` is that folder; `..` never reaches past it from inside."""
    call_command("import_images", str(demo_folder / ".." / demo_folder.name / "gravel"), verbosity=0)
    assert Image.objects.count() == 3
    assert not Image.objects.filter(original_name="secret.png").exists()


def test_a_path_that_is_not_a_folder_is_a_command_error(tmp_path: Path) -> None:
    (tmp_path / "file.png").write_bytes(image_bytes("PNG"))
    for path in (tmp_path / "missing", tmp_path / "file.png"):
        with pytest.raises(CommandError, match="is not a folder"):
            call_command("import_images", str(path), verbosity=0)
