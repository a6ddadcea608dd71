"""Size-limit messages never contradict themselves ("the file is 21.0 MB; the limit is 21.0 MB"), and the
README states the limit the setting has (issue 11, item 11)."""

from __future__ import annotations

import re

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from retrieval.images import byte_size, size_message
from tests.integration.support import ROOT

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("limit", [1000, 20_000, 1_048_576, 20 * 1024 * 1024, 22_020_096])
@pytest.mark.parametrize("over", [1, 100, 5000])
def test_a_message_never_says_the_size_equals_the_limit(limit: int, over: int) -> None:
    message = size_message(limit + over, limit)
    size, allowed = re.fullmatch(r"The file is (.+); the limit is (.+)\.", message).groups()
    assert size != allowed, message


def test_one_byte_over_the_limit_on_the_api(gallery, settings) -> None:
    settings.MAX_UPLOAD_BYTES = 20 * 1024 * 1024
    big = SimpleUploadedFile("big.png", b"\x89PNG" + b"\0" * (settings.MAX_UPLOAD_BYTES - 3))
    api = Client().post("/api/v1/search/", {"image": big})
    assert api.status_code == 400
    assert "The file is 20,971,521 bytes; the limit is 20,971,520 bytes." in api.json()["detail"]


def test_the_readme_states_the_limit_the_setting_has() -> None:
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| `REFIND_MAX_UPLOAD_BYTES`"))
    assert f"| {settings.MAX_UPLOAD_BYTES} |" in row and f"({byte_size(settings.MAX_UPLOAD_BYTES)})" in row
