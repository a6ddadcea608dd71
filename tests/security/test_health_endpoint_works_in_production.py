"""/healthz answers over plain HTTP on 127.0.0.1 under production settings (no HTTPS redirect, no host check),
with gunicorn, and reports the database, the broker and the active index; compose's health check uses it
(issue 11, item 9)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml

from tests.integration.support import REDIS_URL, ROOT, free_port, fresh_database
from tests.security.server import Server, prepared_site

PRODUCTION = {"REFIND_ENV": "production", "DJANGO_SECRET_KEY": "k3y-" + "abcdefghij0123456789" * 3,
              "DJANGO_ALLOWED_HOSTS": "refind.example"}


@pytest.mark.services
def test_health_over_plain_http_under_production_settings(tmp_path: Path) -> None:
    with fresh_database() as url:
        env = prepared_site(tmp_path, url, **PRODUCTION)
        env["CELERY_BROKER_URL"] = REDIS_URL
        server = Server(env, tmp_path, workers=1, threads=2, ready_path="/healthz")
        try:
            answer = requests.get(f"{server.url}/healthz", timeout=30, allow_redirects=False)
            schema = requests.get(f"{server.url}/api/schema/", timeout=30, allow_redirects=False,
                                  headers={"Host": "refind.example"})
            unknown_host = requests.get(f"{server.url}/api/schema/", timeout=30, allow_redirects=False)
        finally:
            server.stop()
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["status"] == "ok" and body["database"]["ok"] and body["broker"]["ok"]
        assert body["index"]["ok"] and body["index"]["version"] >= 1 and body["index"]["vectors"] > 0
        # what the old health check fetched: redirected to HTTPS, or refused for its Host
        assert schema.status_code == 301 and schema.headers["Location"].startswith("https://")
        assert unknown_host.status_code == 400

        dead_broker = {**env, "CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
        server = Server(dead_broker, tmp_path, workers=1, threads=2, ready_path="/healthz")
        try:
            answer = requests.get(f"{server.url}/healthz", timeout=30, allow_redirects=False)
        finally:
            server.stop()
        assert answer.status_code == 200  # search and feedback still work without the broker
        assert answer.json()["status"] == "degraded" and answer.json()["broker"]["ok"] is False


def test_compose_checks_web_with_healthz() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    check = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    assert "http://127.0.0.1:8000/healthz" in check
