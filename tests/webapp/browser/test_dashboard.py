"""Issue 14 item 4: the dashboard says what each version was measured on, hides batch-only fields in online
mode, shows no full bar for a run with nothing to learn, clears a refusal once the run ends, and explains
NMI, MAP@R and α."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.webapp.browser.support import log_in_as_staff
from tests.webapp.feedback_factory import make_images
from webapp.gallery.models import ModelVersion
from webapp.learning import claims
from webapp.learning.evaluation import evaluate_version
from webapp.learning.models import TrainingRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_versions_say_what_they_were_measured_on(page, shot, live_server, split_demo) -> None:
    evaluate_version(ModelVersion.objects.get(is_active=True))
    log_in_as_staff(page, live_server.url)
    page.wait_for_selector("text=Learning dashboard")
    measured = page.locator("#versions tr.active .measured-on").inner_text()
    assert "queries against" in measured and "held-out" in measured
    assert page.locator("#versions tr.stale").count() == 0
    for term in ("NMI", "MAP@R", "α"):
        assert page.locator(".glossary dt", has_text=term).count() == 1
    shot("versions", full_page=True)

    make_images(3, label="newcomers")  # the labelled gallery changes: the old figures are not comparable
    page.reload()
    assert "older gallery" in page.locator("#versions tr.active").inner_text()
    shot("stale")


def test_online_mode_form_and_runs(page, shot, live_server, gallery, eager_tasks) -> None:
    log_in_as_staff(page, live_server.url)
    page.wait_for_selector("text=Learning dashboard")
    expect(page.locator("#id_loss")).to_be_visible()
    page.select_option("#id_mode", "oahu")
    # app.js is deferred: on a slow page the change can land before its listener, and the fields hide when the
    # script's DOMContentLoaded pass reads the mode, so wait for the state rather than read it once.
    for field in ("#id_loss", "#id_epochs", "#id_batch_size", "#id_lr", "#id_backbone", "#id_data"):
        expect(page.locator(field), field).to_be_hidden()
    shot("online-form")
    page.click("text=Start training")  # nothing to learn: no triplets yet
    page.wait_for_selector("#progress .run-status")
    assert page.locator("#progress progress").count() == 0  # no full bar for a run that learned nothing
    assert "Nothing new to learn" in page.inner_text("#progress")
    shot("nothing-to-learn")

    running = TrainingRun.objects.create(mode=TrainingRun.Mode.BATCH, status=TrainingRun.Status.RUNNING)
    claims.claim(running)
    page.select_option("#id_mode", "batch")
    page.click("text=Start training")
    page.wait_for_selector("#progress [role=alert]")
    assert "in progress" in page.inner_text("#progress [role=alert]")
    shot("refused")
    TrainingRun.objects.filter(pk=running.pk).update(status=TrainingRun.Status.PROMOTED, progress=1.0)
    claims.release(running)
    page.wait_for_selector("#progress [role=alert]", state="detached", timeout=10_000)  # gone once it ended
    shot("refusal-cleared")
