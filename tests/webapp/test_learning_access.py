"""Dashboard, learning API and commands: staff only, and they do what they say."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.test import APIClient

from tests.webapp.learning_support import give_feedback
from webapp.gallery.models import ModelVersion
from webapp.learning.models import TrainingRun

pytestmark = pytest.mark.django_db
STAFF_PAGES = ["/dashboard/", "/dashboard/progress/", "/dashboard/plots/recall.png", "/dashboard/plots/alpha.png"]
STAFF_APIS = ["/api/v1/training-runs/", "/api/v1/model-versions/", "/api/v1/reports/"]


@pytest.fixture
def member() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_user("joe", password="pw-joe-123456"))
    return client


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_dashboard_pages_send_others_to_the_login_page(url: str, member: Client) -> None:
    for client in (Client(), member):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.parametrize("url", STAFF_APIS)
def test_learning_apis_refuse_anonymous_and_non_staff(url: str) -> None:
    assert APIClient().get(url).status_code in (401, 403)
    member = APIClient()
    member.force_authenticate(get_user_model().objects.create_user("joe", password="pw-joe-123456"))
    assert member.get(url).status_code == 403
    assert member.post("/api/v1/training-runs/", {"mode": "oahu"}).status_code == 403


def test_dashboard_shows_counts_form_versions_and_plots(split_demo, staff: Client) -> None:
    html = staff.get("/dashboard/").content.decode()
    for text in ("gallery images", "triplets", "Start training", "Model versions", "Run history", "v1 (active)",
                 "/dashboard/plots/recall.png", "/dashboard/plots/alpha.png"):
        assert text in html
    png = staff.get("/dashboard/plots/recall.png")
    assert png["Content-Type"] == "image/png" and png.content[:4] == b"\x89PNG"


def test_dashboard_trigger_runs_and_a_second_trigger_is_refused(split_demo, staff: Client, settings) -> None:
    response = staff.post("/dashboard/retrain/", {"mode": "batch", "loss": "triplet", "epochs": 1, "lr": 0.001,
                                                  "device": "cpu", "data": "labels"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'hx-trigger="every 1s"' in response.content.decode()
    again = staff.post("/dashboard/retrain/", {"mode": "oahu"}, HTTP_HX_REQUEST="true")
    assert again.status_code == 409 and "in progress" in again.content.decode()
    assert TrainingRun.objects.count() == 1


def test_api_trigger_validates_and_runs(split_demo, eager_tasks, settings) -> None:
    settings.PROMOTION_GUARD = "off"
    client = APIClient()
    client.force_authenticate(get_user_model().objects.create_user("st", password="pw-staff-1234", is_staff=True))
    bad = client.post("/api/v1/training-runs/", {"mode": "batch", "loss": "no-such-loss"}, format="json")
    assert bad.status_code == 400 and bad.json()["detail"].startswith("loss:")
    give_feedback(queries=6)
    run = client.post("/api/v1/training-runs/", {"mode": "batch", "loss": "contrastive", "epochs": 1,
                                                 "data": "triplets"}, format="json")
    assert run.status_code == 202, run.content
    body = client.get(f"/api/v1/training-runs/{run.json()['id']}/").json()
    assert body["status"] == "promoted" and body["candidate"]
    reports = client.get("/api/v1/reports/").json()
    assert {r["version"] for r in reports["results"]} >= {body["candidate"]}
    original = ModelVersion.objects.order_by("id").first()
    rolled = client.post(f"/api/v1/model-versions/{original.pk}/rollback/").json()
    assert rolled["is_active"] is True


def test_evaluate_command_prints_json(split_demo, capsys) -> None:
    call_command("evaluate")
    report = json.loads(capsys.readouterr().out)
    assert report["active"] is True and report["labelled"]["recall@1"] > 0.5
    assert set(report["labelled"]) >= {"recall@1", "recall@32", "nmi", "map@r", "precision@1"}
    with pytest.raises(CommandError, match="No model version 999"):
        call_command("evaluate", version=999)


def test_retrain_command_waits_for_the_end(split_demo, eager_tasks, capsys, settings) -> None:
    settings.PROMOTION_GUARD = "off"
    call_command("retrain", mode="batch", loss="multi_similarity", epochs=1, data="labels", wait=True)
    out = capsys.readouterr().out
    assert "Started run" in out and "promoted" in out
    with pytest.raises(CommandError, match="loss"):
        call_command("retrain", mode="batch", loss="nope")
