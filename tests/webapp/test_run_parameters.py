"""Run parameters: one typed object; the settings that give defaults take effect on every way in (dashboard,
API, command) and in the trainer; the API schema lists every parameter."""

from __future__ import annotations

import re
from dataclasses import fields

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from webapp import dispatch
from webapp.learning import batch, claims
from webapp.learning.models import TrainingRun
from webapp.learning.parameters import SPECS, InvalidParameters, RunParameters

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_user():
    return get_user_model().objects.create_user("boss", password="pw-boss-12345", is_staff=True)


def _dashboard_defaults(client: Client) -> dict[str, str]:
    """What the browser posts when staff submit the dashboard's retrain form unchanged."""
    html = client.get("/dashboard/").content.decode()
    form = html[html.index('id="retrain-form"'):]
    form = form[: form.index("</form>")]
    values = dict(re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', form))
    for name, options in re.findall(r'<select name="(\w+)"[^>]*>(.*?)</select>', form, re.S):
        values[name] = re.search(r'<option value="([^"]*)"[^>]*selected', options).group(1)
    return {k: v for k, v in values.items() if k != "csrfmiddlewaretoken"}


def test_the_settings_are_the_defaults_of_every_way_in(settings, staff_user) -> None:
    settings.BATCH_DEFAULT_LOSS = "triplet"
    settings.TRAINING_DEVICE = "cpu"
    web = Client()
    web.force_login(staff_user)
    posted = _dashboard_defaults(web)
    assert posted["loss"] == "triplet" and posted["device"] == "cpu"
    assert web.post("/dashboard/retrain/", posted, HTTP_HX_REQUEST="true").status_code == 200
    api = APIClient()
    api.force_authenticate(staff_user)
    for way in ("api", "command"):
        claims.release(claims.holder())  # the previous run stays queued (no worker here) and lets go
        if way == "api":
            assert api.post("/api/v1/training-runs/", {"mode": "batch"}, format="json").status_code == 202
        else:
            call_command("retrain", "--mode", "batch")
    runs = TrainingRun.objects.order_by("id")
    assert [(run.params["loss"], run.params["device"]) for run in runs] == [("triplet", "cpu")] * 3


def test_the_trainer_uses_the_configured_loss_and_device(split_demo, eager_tasks, settings, monkeypatch) -> None:
    settings.BATCH_DEFAULT_LOSS = "contrastive"
    settings.TRAINING_DEVICE = "cpu"
    settings.PROMOTION_GUARD = "off"  # about the parameters; the guard has its own tests
    seen = {}
    real = batch.fine_tune

    def spy(features, labels, triplets, **kwargs):
        seen.update(loss=kwargs["loss"], device=kwargs["device"])
        return real(features, labels, triplets, **kwargs)

    monkeypatch.setattr(batch, "fine_tune", spy)
    api = APIClient()
    api.force_authenticate(get_user_model().objects.create_user("st", password="pw-staff-1234", is_staff=True))
    response = api.post("/api/v1/training-runs/", {"mode": "batch", "epochs": 1, "data": "labels"}, format="json")
    assert response.status_code == 202
    assert TrainingRun.objects.get().status == "promoted"
    assert seen == {"loss": "contrastive", "device": "cpu"}


def test_a_cuda_device_sends_the_run_to_the_gpu_queue(settings) -> None:
    settings.TRAINING_DEVICE = "cuda"
    assert RunParameters.of("batch").queue == dispatch.GPU
    assert RunParameters.of("batch", device="cpu").queue == dispatch.TRAINING
    assert RunParameters.of("oahu").queue == dispatch.TRAINING


def test_bad_values_are_refused_with_the_field_named() -> None:
    for values, field in [({"loss": "no-such-loss"}, "loss"), ({"epochs": 0}, "epochs"), ({"lr": 2.0}, "lr"),
                          ({"device": "tpu"}, "device"), ({"data": "x"}, "data"), ({"seed": -1}, "seed")]:
        with pytest.raises(InvalidParameters, match=f"^{field}: ") as caught:
            RunParameters.of("batch", **values)
        assert list(caught.value.errors) == [field]
    with pytest.raises(InvalidParameters):
        RunParameters.parse(["mode", "batch"])


def test_stored_parameters_read_back_the_same() -> None:
    parameters = RunParameters.of("batch", loss="arcface", epochs=3, batch_size=32, lr=0.01, backbone=True, seed=7)
    assert RunParameters.from_stored("batch", parameters.stored()) == parameters
    assert RunParameters.of("oahu", trigger="feedback").stored() == {"trigger": "feedback"}


def test_the_api_schema_lists_every_run_parameter(staff_user) -> None:
    schema = Client().get("/api/schema/?format=json").json()
    body = schema["paths"]["/api/v1/training-runs/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    properties = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[-1]]["properties"]
    parameters = {field.name for field in fields(RunParameters)} - {"trigger"}
    assert set(properties) == parameters == {spec.name for spec in SPECS}
    loss = properties["loss"]
    loss = loss.get("allOf", [loss])[0]
    if "$ref" in loss:  # enums are components of their own
        loss = schema["components"]["schemas"][loss["$ref"].rsplit("/", 1)[-1]]
    assert set(loss["enum"]) >= {"triplet", "multi_similarity", "arcface"}
    assert properties["batch_size"]["minimum"] == 4 and properties["lr"]["maximum"] == 1.0
