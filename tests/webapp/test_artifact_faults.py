"""Disk full while writing a model or index artifact: nothing half-written ever becomes active.

The fault is injected where the bytes are written: the worker's local write (FAISS, torch) or the upload
into the storage (an object store whose save writes straight to the final name). Each time the run fails
with the reason, no row points to a missing or partial file, no partial file remains under a final name,
and the previously active model and index keep serving.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from tests.webapp.learning_support import give_feedback
from tests.webapp.multihost import ObjectStorage, files_under
from webapp import artifacts
from webapp.feedback import consumer
from webapp.feedback.models import ConsumerCursor
from webapp.gallery import tasks
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.learning.models import TrainingRun
from webapp.learning.online import CURSOR
from webapp.learning.parameters import RunParameters
from webapp.learning.runs import start_run
from webapp.search import service

pytestmark = pytest.mark.django_db
NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


def _faiss_disk_full(monkeypatch) -> None:
    def write_index(index, path: str) -> None:
        Path(path).write_bytes(b"FAISS half an index")
        raise NO_SPACE

    monkeypatch.setattr("retrieval.index.faiss.write_index", write_index)


def _torch_disk_full(monkeypatch) -> None:
    def save(obj, handle) -> None:
        handle.write(b"PK\x03\x04 half a model")
        raise NO_SPACE

    monkeypatch.setattr("training.oahu.torch.save", save)


def _upload_disk_full(monkeypatch) -> None:
    """The object store's own disk fills up after some bytes of the object are written."""
    def save(self, name: str, content) -> str:
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(next(iter(content.chunks()))[:10])
        raise NO_SPACE

    monkeypatch.setattr(ObjectStorage, "_save", save)


@pytest.fixture
def storage_root(request, data_dir: Path) -> Path:
    """Where artifacts live: this folder for local-write faults, an object store for upload faults."""
    return request.getfixturevalue("object_storage") if request.getfixturevalue("where") == "upload" else data_dir


def _assert_consistent(root: Path, cache: Path) -> None:
    """Every artifact file is one a row points to, every row points to a file, no partial files anywhere."""
    stored = {name for name in files_under(root) if name.startswith(("models/", "indexes/"))}
    named = (set(IndexVersion.objects.values_list("path", flat=True))
             | set(ModelVersion.objects.exclude(head_file="").values_list("head_file", flat=True))
             | set(ConsumerCursor.objects.exclude(artifact="").values_list("artifact", flat=True)))
    assert stored == named
    assert not [name for name in files_under(root) | files_under(cache) if ".part" in name or ".staging" in name]


def _serving(query: Image) -> tuple[int, int]:
    result = service.search_similar(query, k=5)
    assert len(result.hits) == 5
    return result.index_version, result.model_version.pk


@pytest.mark.parametrize("where", ["write", "upload"])
def test_disk_full_while_writing_an_index(where, storage_root, split_demo, settings, monkeypatch) -> None:
    query = Image.objects.first()
    before, rows = _serving(query), IndexVersion.objects.count()
    (_upload_disk_full if where == "upload" else _faiss_disk_full)(monkeypatch)
    with pytest.raises(artifacts.ArtifactError, match="No space left on device") as failure:
        tasks.rebuild_index()
    assert "nothing was published" in str(failure.value)
    assert IndexVersion.objects.count() == rows
    _assert_consistent(storage_root, settings.CACHE_DIR)
    assert _serving(query) == before
    monkeypatch.undo()
    assert _serving(query) == before


@pytest.mark.parametrize(("mode", "where"), [("oahu", "write"), ("oahu", "upload"), ("batch", "upload")])
def test_disk_full_while_writing_a_model(
    mode, where, storage_root, split_demo, settings, monkeypatch, eager_tasks
) -> None:
    settings.ONLINE_MIN_NEW_TRIPLETS = 1
    settings.PROMOTION_GUARD = "off"
    query = Image.objects.filter(split=Image.Split.FEEDBACK).first()
    before, versions = _serving(query), ModelVersion.objects.count()
    give_feedback(queries=4)
    cursor = consumer.open_cursor(CURSOR)
    (_upload_disk_full if where == "upload" else _torch_disk_full)(monkeypatch)
    params = {"data": "labels", "epochs": 1} if mode == "batch" else {}
    run = start_run(RunParameters.of(mode, **params))
    run.refresh_from_db()
    assert run.status == TrainingRun.Status.FAILED
    assert "ArtifactError" in run.message and "No space left on device" in run.message
    assert ModelVersion.objects.count() == versions
    after = consumer.open_cursor(CURSOR)
    assert (after.watermark, after.artifact) == (cursor.watermark, cursor.artifact)  # no triplet is lost
    _assert_consistent(storage_root, settings.CACHE_DIR)
    assert _serving(query) == before

    monkeypatch.undo()  # space again: the same run succeeds, from the same triplets
    retry = start_run(RunParameters.of(mode, **params))
    retry.refresh_from_db()
    assert retry.status == TrainingRun.Status.PROMOTED, (retry.message, retry.error)
    assert _serving(query) == (IndexVersion.objects.get(is_active=True).pk, retry.candidate_id)
    _assert_consistent(storage_root, settings.CACHE_DIR)
