"""Issue 14 item 3: a verdict can be changed and undone in the browser; buttons show their pressed state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.webapp.browser.support import search_with
from webapp.feedback.models import Judgement, Triplet
from webapp.feedback.triplets import derive_pending
from webapp.feedback.usable import usable_triplets

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_verdict_is_changed_then_undone(page, shot, live_server, gallery, demo_folder: Path) -> None:
    search_with(page, live_server.url, demo_folder / "teal-rings" / "teal-rings-000.jpg")
    hit = page.locator("#result-grid .hit").nth(3)
    answers = []
    page.on("response", lambda response: answers.append(response.status) if "/feedback/" in response.url else None)

    hit.get_by_role("button", name="Similar", exact=True).click()
    hit.locator(".similar[aria-pressed=true]").wait_for()
    shot("similar-pressed")
    hit.get_by_role("button", name="Not similar", exact=True).click()
    hit.locator(".dissimilar[aria-pressed=true]").wait_for()
    assert hit.locator(".similar").get_attribute("aria-pressed") == "false"
    assert "Marked not similar" in hit.inner_text() and "impression" not in hit.inner_text()
    shot("changed")
    assert list(Judgement.objects.filter(explicit=True, retracted_at__isnull=True).values_list("kind", flat=True)) \
        == ["dissimilar"]

    hit.get_by_role("button", name="Not similar", exact=True).click()  # pressed again: undo
    hit.get_by_text("Verdict removed").wait_for()
    assert hit.locator("[aria-pressed=true]").count() == 0
    shot("undone")
    assert all(status == 200 for status in answers) and len(answers) == 3
    assert not Judgement.objects.filter(explicit=True, retracted_at__isnull=True).exists()
    derive_pending()  # what the worker does after the clicks (triplets are derived outside the request)
    assert usable_triplets(Triplet.objects.all()).count() == 0  # whatever was derived is retracted
