"""Each webapp test gets its own data directory; a tiny labelled gallery is one fixture away."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client

from tests.webapp.accounts import staff_client
from webapp.gallery.demo import generate_demo_gallery
from webapp.gallery.importer import ImportReport
from webapp.gallery.jobs import import_tree
from webapp.runtime import runtime


@pytest.fixture(autouse=True, scope="session")
def in_memory_broker() -> None:
    """Tasks a test enqueues stay in this process (never in a real broker's queue)."""
    from webapp import celery_app

    celery_app.conf.broker_url = "memory://"
    celery_app.conf.broker_transport_options = {}


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, settings) -> Path:
    root = tmp_path / "data"
    settings.DATA_DIR = root
    settings.STORAGE_DIR = root
    settings.MEDIA_ROOT = root / "media"
    settings.FEATURES_DIR = root / "features"
    settings.CACHE_DIR = root / "cache"
    settings.EXPORTS_DIR = Path(os.environ["REFIND_EXPORTS_DIR"])  # tests/conftest.py: shared, content-named
    settings.INDEX_CHECK_SECONDS = 0.0
    settings.ONLINE_LEARNING = False  # learning tests turn it on and run tasks eagerly
    settings.CLICK_MEMORY_BACKGROUND = False  # judgements reach the memory in the request; tested on its own
    from django.core.cache import cache

    cache.clear()  # rate-limit history starts empty in every test
    runtime.reset()  # also a new index holder: the previous test's index (and its row ids) is not served
    yield root
    runtime.reset()


@pytest.fixture
def demo_folder(tmp_path: Path) -> Path:
    """3 generated images in each of the 12 demo classes, in class folders."""
    folder = tmp_path / "demo"
    generate_demo_gallery(folder, per_class=3, seed=1)
    return folder


@pytest.fixture
def gallery(db, demo_folder: Path) -> ImportReport:
    return import_tree(demo_folder, labels_from_dirs=True)


@pytest.fixture
def split_demo(gallery) -> None:
    """The demo gallery split per label (seed 0): 2 feedback + 1 held-out image per class."""
    from webapp.feedback.splits import split_gallery

    split_gallery(seed=0)


@pytest.fixture
def eager_tasks():
    """Celery tasks run inline (learning tests; the integration tests use a real worker)."""
    from webapp import celery_app

    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


@pytest.fixture
def object_storage(tmp_path: Path, settings) -> Path:
    """Media and artifacts in a test object store without local paths (like S3); returns its folder."""
    bucket = tmp_path / "bucket"
    entry = {"BACKEND": "tests.webapp.multihost.ObjectStorage", "OPTIONS": {"location": str(bucket)}}
    settings.STORAGES = {**settings.STORAGES, "default": entry, "artifacts": entry}
    return bucket


@pytest.fixture
def staff(db) -> Client:
    """A client logged in as the staff user "boss" (a test module may define its own `staff`)."""
    return staff_client()
