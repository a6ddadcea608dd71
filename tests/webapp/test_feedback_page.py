"""The results page records an impression; clicks and verdicts are htmx requests acknowledged in place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.webapp.feedback_factory import make_images, make_impression
from webapp.feedback.models import Impression, Judgement
from webapp.gallery.models import Image

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _search(client: Client, demo_folder: Path) -> tuple[Impression, str]:
    data = (demo_folder / "purple-stripes" / "purple-stripes-000.jpg").read_bytes()
    html = client.post("/search/", {"image": SimpleUploadedFile("q.jpg", data)}, **HTMX).content.decode()
    return Impression.objects.latest("id"), html


def test_results_carry_click_and_verdict_controls_for_their_impression(gallery, demo_folder: Path) -> None:
    impression, html = _search(Client(), demo_folder)
    assert len(impression.shown) == 20
    assert html.count('"judgement": "click"') == 20
    assert html.count('"judgement": "similar"') == 20 and html.count('"judgement": "dissimilar"') == 20
    assert f'"impression": "{impression.pk}"' in html


def test_a_click_opens_the_image_and_is_recorded_once(gallery, demo_folder: Path) -> None:
    client = Client()
    impression, _ = _search(client, demo_folder)
    image_id = impression.shown[1]
    post = {"impression": impression.pk, "image": image_id, "judgement": "click", "view": "1"}
    first = client.post("/feedback/", post, **HTMX).content.decode()
    assert "Click noted" in first and "Find similar to this" in first
    assert re.search(r'src="/media/originals/[^"]+"', first)
    again = client.post("/feedback/", post, **HTMX).content.decode()
    assert "(already)" in again
    assert Judgement.objects.filter(impression=impression).count() == 1


def _pressed(html: str) -> list[str]:
    return re.findall(r'data-verdict="(\w+)" aria-pressed="true"', html)


def test_a_verdict_can_be_changed_and_undone_and_the_buttons_show_it(gallery, demo_folder: Path) -> None:
    client = Client()
    impression, _ = _search(client, demo_folder)
    post = {"impression": impression.pk, "image": impression.shown[4]}
    yes = client.post("/feedback/", {**post, "judgement": "similar"}, **HTMX).content.decode()
    assert "Marked similar" in yes and _pressed(yes) == ["similar"]
    assert '"judgement": "undo"' in yes  # pressing "Similar" again undoes it
    no = client.post("/feedback/", {**post, "judgement": "dissimilar"}, **HTMX)
    assert no.status_code == 200 and "Marked not similar" in no.content.decode()
    assert _pressed(no.content.decode()) == ["dissimilar"]
    undone = client.post("/feedback/", {**post, "judgement": "undo"}, **HTMX).content.decode()
    assert "Verdict removed" in undone and _pressed(undone) == []
    live = Judgement.objects.filter(impression=impression, explicit=True, retracted_at__isnull=True)
    assert not live.exists() and Judgement.objects.filter(impression=impression, explicit=True).count() == 2


def test_another_visitors_page_cannot_be_judged(db) -> None:
    query = make_images(1, role=Image.Role.QUERY)[0]
    shown = make_images(2)
    impression = make_impression(query, shown, session_key="someone-else")
    response = Client().post("/feedback/", {"impression": impression.pk, "image": shown[0].pk,
                                            "judgement": "click"}, **HTMX)
    assert response.status_code == 404
    assert Judgement.objects.count() == 0


@pytest.mark.parametrize("post", [{}, {"impression": "x", "image": "1", "judgement": "click"},
                                  {"impression": "1", "image": "1", "judgement": "meh"}])
def test_malformed_judgements_are_refused(db, post) -> None:
    assert Client().post("/feedback/", post, **HTMX).status_code == 400
    assert Judgement.objects.count() == 0
