"""docker-compose.yml: every Refind container shares only the database, the broker and the storage."""

from __future__ import annotations

from pathlib import Path

import yaml

COMPOSE = yaml.safe_load((Path(__file__).resolve().parents[1] / "docker-compose.yml").read_text())
REFIND = {name: service for name, service in COMPOSE["services"].items() if service.get("image") == "refind:latest"}


def test_every_refind_container_reaches_the_same_database_broker_and_storage() -> None:
    assert set(REFIND) >= {"migrate", "web", "worker", "trainer", "beat", "gpu-worker"}
    for name, service in REFIND.items():
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:" in env["DATABASE_URL"], name
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0", name  # never the embedded broker
        assert env["REFIND_STORAGE_DIR"] == "/storage" and "refind-storage:/storage" in service["volumes"], name
        assert env["REFIND_STORAGE_BACKEND"] == "${REFIND_STORAGE_BACKEND:-}", name  # object storage by .env
        assert env["REFIND_DATA_DIR"] == "/data", name  # this host's caches


def test_the_worker_can_be_scaled() -> None:
    worker = COMPOSE["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # both would clash between replicas
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert set(COMPOSE["volumes"]) >= {"refind-storage", "refind-data"}
