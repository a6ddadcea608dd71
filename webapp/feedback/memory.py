"""Click memory in the app: every committed judgement moves the judged gallery images at once, for everyone.

Writing (`apply_pending`, right after a judgement commits): judgements past the feature space's cursor
(`ConsumerCursor` named ``click-memory:<backbone>``; judgement ids grow in commit order because they are
inserted under the TripletLog lock) are applied in id order with `retrieval.click_memory.ClickMemory`,
the moved images' offsets are upserted (`ClickOffset`) and the cursor advances by compare-and-swap, all in
one transaction: each judgement is applied exactly once per feature space, or not at all (a lost race or a
crash rolls everything back and the next call applies it). A new feature space (a tuned backbone, another
pooling) starts with an empty memory and replays every judgement.

Reading (`overlay`): each process reloads offsets changed since it last looked at most every
INDEX_CHECK_SECONDS and embeds the moved images with the served model version's head (so the memory
composes with whatever model is active, and follows a model switch at once); search ranks the index with
those rows replaced (`retrieval.click_memory.search_with_overlay`).
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction

from retrieval.click_memory import ClickMemory, MemoryConfig, Overlay, shifted_features
from retrieval.relevance import skipped_above
from webapp import dispatch
from webapp.feedback.models import ClickOffset, ConsumerCursor, Judgement
from webapp.gallery.features import ensure_features
from webapp.gallery.models import Image, IndexVersion, ModelVersion
from webapp.runtime import runtime

logger = logging.getLogger(__name__)
CURSOR_PREFIX = "click-memory:"
BATCH = 200
TIME_BUDGET_SECONDS = 1.0
# The background thread waits this long after a wake before applying: the click that woke it finishes its
# answer without competing for the interpreter, and the clicks of the next moments share the pass.
GATHER_SECONDS = 0.05


def config() -> MemoryConfig:
    return MemoryConfig(max_shift=settings.CLICK_MEMORY_MAX_SHIFT)


def _vector(stored) -> np.ndarray:
    return np.frombuffer(bytes(stored), np.float32).copy()


class _LostRace(Exception):
    """Another process advanced the cursor first: roll back (it applied these judgements)."""


def _parts(judgement: Judgement, positives_of: dict[int, list[tuple[int, int]]]) -> tuple[list[int], list[int]]:
    """(positives, negatives) one judgement asserts about its query, from what its page had when it was made:
    a positive brings the page's positives so far (they move together) and the results skipped above it."""
    impression = judgement.impression
    if not judgement.positive:
        return [], [judgement.image_id]
    earlier = [image for jid, image in sorted(positives_of.get(impression.pk, [])) if jid <= judgement.id]
    positives = list(dict.fromkeys([*earlier, judgement.image_id]))
    if settings.FEEDBACK_NEGATIVES != "skip_above":
        return positives, []
    above = impression.shown[: max(0, judgement.rank - impression.offset - 1)] + [judgement.image_id]
    return positives, skipped_above(above, set(positives), settings.FEEDBACK_MAX_SKIP_ABOVE)


def _apply_batch(space: str, limit: int) -> int:
    with transaction.atomic():
        cursor, _ = ConsumerCursor.objects.select_for_update().get_or_create(name=CURSOR_PREFIX + space)
        start = cursor.watermark
        judgements = list(Judgement.objects.filter(id__gt=start).select_related("impression").order_by("id")[:limit])
        if not judgements:
            return 0
        impressions = {j.impression_id for j in judgements}
        positive_rows = Judgement.objects.filter(impression_id__in=impressions, retracted_at__isnull=True).exclude(
            kind=Judgement.Kind.DISSIMILAR)
        positives_of: dict[int, list[tuple[int, int]]] = {}
        for jid, impression, image in positive_rows.values_list("id", "impression_id", "image_id"):
            positives_of.setdefault(impression, []).append((jid, image))
        live = [j for j in judgements if j.retracted_at is None]  # changed or undone before it was applied: skip
        plan = [(j, j.impression.query_id, *_parts(j, positives_of)) for j in live]
        ids = np.unique([i for _, anchor, pos, neg in plan for i in (anchor, *pos, *neg)]).astype(np.int64)
        store = ensure_features(ids, space)
        known = set(ids[store.contains(ids)].tolist())
        gallery = set(Image.objects.filter(pk__in=ids.tolist(), role=Image.Role.GALLERY).values_list("id", flat=True))
        rows = ClickOffset.objects.filter(space=space, image_id__in=ids.tolist()).values_list("image_id", "vector")
        memory = ClickMemory(config(), {image: _vector(vector) for image, vector in rows})
        moved: dict[int, int] = {}
        for judgement, anchor, pos, neg in plan:
            if anchor not in known:
                continue
            changed = memory.apply(anchor, [p for p in pos if p in known], [n for n in neg if n in known],
                                   lambda wanted: store.get(np.asarray(wanted, np.int64)), gallery.__contains__)
            moved.update(dict.fromkeys(changed, judgement.id))
        ClickOffset.objects.bulk_create(
            [ClickOffset(space=space, image_id=image, vector=memory.offsets[image].tobytes(), judgement=jid)
             for image, jid in moved.items()],
            update_conflicts=True, unique_fields=["space", "image"],
            update_fields=["vector", "judgement", "updated_at"],
        )
        last = judgements[-1].id
        if ConsumerCursor.objects.filter(pk=cursor.pk, watermark=start).update(watermark=last) != 1:
            raise _LostRace
    return len(judgements)


def apply_pending(space: str | None = None, limit: int = BATCH, budget: float = TIME_BUDGET_SECONDS) -> int:
    """Apply the judgements this feature space has not applied yet (up to `budget` seconds); how many were.

    Never raises for a database problem: what is not applied now is applied by the next call."""
    if not settings.CLICK_MEMORY:
        return 0
    started, applied = time.monotonic(), 0
    try:
        if space is None:  # the served model's features; with no index yet, later calls replay everything
            served = IndexVersion.objects.filter(is_active=True).values_list("model_version__backbone", flat=True)
            space = served.first()
            if space is None:
                return 0
        while time.monotonic() - started < budget:
            done = _apply_batch(space, limit)
            applied += done
            if done < limit:
                break
    except _LostRace:
        pass
    except DatabaseError as exc:
        logger.warning("Click memory not updated now (the next judgement retries): %s", exc)
    return applied


class _Applier:
    """One background thread per process that applies committed judgements, so that a click's request does
    not pay for the memory (its cost was a search's): woken after each commit, it applies everything pending
    in one go (concurrent clicks share one pass instead of queueing on the cursor's row lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():  # first use, or a forked child
                self._thread = threading.Thread(target=self._loop, name="click-memory", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(GATHER_SECONDS)
            self._wake.clear()
            close_old_connections()
            try:
                apply_pending()
            except Exception:  # never let the thread die: the next judgement (or housekeeping) retries
                logger.exception("Click memory not updated now")
            finally:
                close_old_connections()


_applier = _Applier()


def after_commit() -> None:
    """Run after each committed judgement (webapp/feedback/signals.py): applied by this process's background
    thread within moments, or at once where tasks run inline or REFIND_CLICK_MEMORY_BACKGROUND is off."""
    if dispatch.runs_inline() or not settings.CLICK_MEMORY_BACKGROUND:
        apply_pending()
    else:
        _applier.wake()


class OverlayCache:
    """One process's view of the click memory for the served model version."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._version: tuple[int, str, str] | None = None
        self._seen = 0
        self._checked_at = 0.0
        self._vectors: dict[int, np.ndarray] = {}
        self._overlay: Overlay | None = None

    def get(self, version: ModelVersion, dim: int) -> Overlay:
        if not settings.CLICK_MEMORY:
            return Overlay.empty(dim)
        with self._lock:
            key = (version.pk, version.backbone, version.head_file)
            if key != self._version:  # another model: re-embed every moved image with its head
                self._version, self._seen, self._vectors, self._overlay = key, 0, {}, None
                self._checked_at = 0.0
            now = time.monotonic()
            if self._overlay is None or now - self._checked_at >= settings.INDEX_CHECK_SECONDS:
                self._checked_at = now
                self._refresh(version)
            if self._overlay is None or self._overlay.vectors.shape[1] != dim:
                self._overlay = _stack(self._vectors, dim)
            return self._overlay

    def _refresh(self, version: ModelVersion) -> None:
        rows = list(ClickOffset.objects.filter(space=version.backbone, judgement__gt=self._seen)
                    .values_list("image_id", "vector", "judgement"))
        if not rows:
            return
        ids = np.array([image for image, _, _ in rows], dtype=np.int64)
        offsets = np.stack([_vector(vector) for _, vector, _ in rows])
        store = ensure_features(ids, version.backbone)
        have = store.contains(ids)
        if have.any():
            embedded = runtime.embed(version, shifted_features(store.get(ids[have]), offsets[have]))
            self._vectors.update(zip(ids[have].tolist(), embedded, strict=True))
        self._seen = max(self._seen, max(judgement for _, _, judgement in rows))
        self._overlay = None


def _stack(vectors: dict[int, np.ndarray], dim: int) -> Overlay:
    if not vectors:
        return Overlay.empty(dim)
    ids = np.fromiter(vectors, dtype=np.int64, count=len(vectors))
    return Overlay(ids, np.stack([vectors[i] for i in ids.tolist()]).astype(np.float32))


def overlay(version: ModelVersion, dim: int) -> Overlay:
    """The moved images under `version` (refreshed at most every INDEX_CHECK_SECONDS; held by the runtime)."""
    return runtime.view("click_memory", OverlayCache).get(version, dim)


def reset() -> None:
    """Forget this process's view of the moved images (tests switch databases and data directories)."""
    runtime.forget("click_memory")


def served_vectors(version: ModelVersion, ids: np.ndarray) -> np.ndarray:
    """Embedded vectors of images as the index serves them, moved ones included (images without features,
    e.g. an unreadable original, are left out)."""
    return served_rows(version, ids)[1]


def served_rows(version: ModelVersion, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the ids that have features, their served vectors): `served_vectors` saying which rows it kept."""
    ids = np.asarray(ids, dtype=np.int64)
    store = ensure_features(ids, version.backbone)
    ids = ids[store.contains(ids)] if len(ids) else ids
    features = store.get(ids)
    if settings.CLICK_MEMORY and len(ids):
        rows = dict(ClickOffset.objects.filter(space=version.backbone, image_id__in=ids.tolist())
                    .values_list("image_id", "vector"))
        if rows:
            offsets = np.zeros_like(features)
            for n, image in enumerate(ids.tolist()):
                if image in rows:
                    offsets[n] = _vector(rows[image])
            features = shifted_features(features, offsets)
    return ids, runtime.embed(version, features)
