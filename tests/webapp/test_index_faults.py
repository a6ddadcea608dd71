"""A corrupted index file never takes search down: the previous index keeps serving; staff see the error."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.gallery import indexing
from webapp.gallery.models import Image, IndexVersion
from webapp.runtime import runtime
from webapp.search import service

pytestmark = pytest.mark.django_db


def test_a_corrupted_index_keeps_the_previous_one_serving(gallery, data_dir: Path, caplog) -> None:
    query = Image.objects.filter(role=Image.Role.GALLERY).first()
    good = service.search_similar(query, k=5)
    broken = indexing.build_and_activate()
    (data_dir / broken.path).write_bytes(b"\x00garbage, not a FAISS index")
    for _ in range(3):  # reported once, not retried on every search
        result = service.search_similar(query, k=5)
        assert result.index_version == good.index_version and len(result.hits) == 5
    broken.refresh_from_db()
    assert "RuntimeError" in broken.load_error
    assert sum("cannot be loaded" in record.message for record in caplog.records) == 1

    staff = Client()
    staff.force_login(get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True))
    html = staff.get("/dashboard/").content.decode()
    assert f"Index {broken.pk}" in html and "could not be loaded" in html

    fixed = indexing.build_and_activate()  # the next good version is picked up as usual
    assert service.search_similar(query, k=5).index_version == fixed.pk


def test_with_no_index_loaded_yet_search_answers_503_not_500(gallery, data_dir: Path) -> None:
    active = IndexVersion.objects.get(is_active=True)
    (data_dir / active.path).write_bytes(b"broken")
    runtime.index_holder._current = None  # a fresh process that never loaded an index
    with pytest.raises(service.SearchUnavailable, match="cannot be loaded"):
        service.search_similar(Image.objects.first(), k=5)
    assert "RuntimeError" in IndexVersion.objects.get(pk=active.pk).load_error
