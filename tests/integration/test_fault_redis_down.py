"""Redis down: search works, feedback is stored, the dashboard says training is delayed; back: it learns.

Redis (broker and shared cache) is reached through a TCP proxy the test stops and starts, so the
machine's Redis is never touched. Web (gunicorn), a Celery worker and beat are real processes.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.integration.support import (
    REDIS_URL,
    Gunicorn,
    address_of,
    fresh_database,
    prepare_site,
    sql_value,
    stack_env,
    staff_session,
    start_beat,
    start_worker,
    via_port,
    visitor_session,
    wait_for,
)
from tests.integration.tcp_proxy import TcpProxy
from webapp.gallery.demo import generate_demo_gallery

pytestmark = pytest.mark.services
DELAYED = "Training is delayed: the task broker is unreachable"
ACTIVE_VERSION = "SELECT id FROM gallery_modelversion WHERE is_active"


def _search(session: requests.Session, base_url: str, image: Path) -> dict:
    with image.open("rb") as handle:
        response = session.post(f"{base_url}/api/v1/search/", files={"image": handle}, data={"k": 20}, timeout=60)
    assert response.status_code == 200, response.text[:500]
    return response.json()


def test_redis_down_keeps_search_and_feedback_and_training_catches_up(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=3, seed=5)
    with fresh_database() as database_url, TcpProxy(address_of(REDIS_URL)) as redis_proxy:
        redis_url = via_port(REDIS_URL, redis_proxy.port)
        env = stack_env(database_url, redis_url, tmp_path / "data", REFIND_CACHE_URL=redis_url,
                        DJANGO_DEBUG="false", REFIND_ONLINE_MIN_NEW_TRIPLETS="1",
                        REFIND_PROMOTION_GUARD="off", REFIND_ONLINE_DEBOUNCE_SECONDS="0.2",
                        REFIND_HELDOUT_IMPRESSION_EVERY="0", REFIND_HOUSEKEEPING_SECONDS="5")
        prepare_site(env, folder)
        version_before = sql_value(database_url, ACTIVE_VERSION)
        query_file, query_label = (folder / "sunsets" / "sunsets-000.jpg"), "sunsets"
        worker, beat, web = start_worker(env, tmp_path), start_beat(env, tmp_path), Gunicorn(env, tmp_path)
        try:
            staff = staff_session(web.url)
            assert DELAYED not in staff.get(f"{web.url}/dashboard/", timeout=30).text

            redis_proxy.stop()
            visitor = visitor_session(web.url)
            results = _search(visitor, web.url, query_file)
            wrong = [hit for hit in results["results"] if hit["label"] != query_label][:3]
            right = [hit for hit in results["results"] if hit["label"] == query_label]
            assert wrong and right
            for hit, verdict in [(hit, "dissimilar") for hit in wrong] + [(hit, "click") for hit in right]:
                started = time.monotonic()
                response = visitor.post(f"{web.url}/api/v1/feedback/", timeout=30, json={
                    "query_id": results["query_id"], "image_id": hit["image_id"], "judgement": verdict})
                assert response.status_code == 201, response.text[:500]
                assert time.monotonic() - started < 5, "a broker outage must not hold up a feedback request"
            stored = sql_value(database_url, "SELECT count(*) FROM feedback_judgement")
            assert stored == len(wrong) + len(right)  # triplets are derived by a worker once the broker is back

            wait_for(lambda: DELAYED in staff.get(f"{web.url}/dashboard/", timeout=30).text, 10,
                     "the dashboard to say that training is delayed")  # the broker check is cached for 2 s
            assert sql_value(database_url, ACTIVE_VERSION) == version_before

            redis_proxy.start()
            wait_for(lambda: sql_value(database_url, ACTIVE_VERSION) != version_before, 90,
                     "a new model version learned from the stored feedback")
            watermark = sql_value(database_url, "SELECT watermark FROM feedback_consumercursor WHERE name = %s",
                                  ("oahu",))
            assert watermark == sql_value(database_url, "SELECT max(id) FROM feedback_triplet") > 0
            assert sql_value(database_url, "SELECT count(*) FROM feedback_judgement WHERE NOT derived") == 0
            wait_for(lambda: DELAYED not in staff.get(f"{web.url}/dashboard/", timeout=30).text, 20,
                     "the dashboard to stop warning")
            assert _search(visitor, web.url, query_file)["model_version"] != results["model_version"]
        finally:
            redis_proxy.start()
            logs = {"web": web.stop(), "worker": worker.stop(), "beat": beat.stop()}
            for name, text in logs.items():  # shown by pytest only when the test fails
                print(f"----- {name} log (tail) -----\n{text[-8000:]}")
        assert "Triplet derivation delayed: cannot reach the broker" in logs["web"]  # the worker asks for learning
        assert "Traceback" not in logs["web"], logs["web"][-3000:]
        assert "execute_run" in logs["worker"] and "succeeded" in logs["worker"]
