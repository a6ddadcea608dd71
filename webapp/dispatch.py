"""Sending tasks: queue names, routes, countdowns and the one policy for a broker that is down.

Tasks are sent by name, so no module below an app's `tasks.py` imports it. Routes: learning's runs and
online updates go to the `training` queue (a CUDA run to `gpu`); everything else — housekeeping included, so
that a dead training worker is still reaped — to `default`, the queue every deployment listens on
(settings.CELERY_TASK_ROUTES names `route`). When the broker cannot be reached, `send` logs it and returns
False; it never raises. What was asked for is in the database already (a queued run, triggered triplets, an
import chunk, a version without a report), and beat's housekeeping sends it again once the broker is back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.conf import settings

from webapp import broker, celery_app

logger = logging.getLogger(__name__)

DEFAULT = "default"
TRAINING = "training"
GPU = "gpu"

EXECUTE_RUN = "webapp.learning.tasks.execute_run"
LEARN_ONLINE = "webapp.learning.tasks.learn_online"
HOUSEKEEPING = "webapp.learning.tasks.housekeeping"
EVALUATE_VERSION = "webapp.learning.tasks.evaluate_model_version"
IMPORT_CHUNK = "webapp.gallery.tasks.import_chunk"
DERIVE_TRIPLETS = "webapp.feedback.tasks.derive_triplets"

ROUTES = {EXECUTE_RUN: TRAINING, LEARN_ONLINE: TRAINING}  # every other task: DEFAULT
INSPECT_TIMEOUT_SECONDS = 1.0  # how long to wait for workers to say which queues they consume
INSPECT_EVERY_SECONDS = 10.0  # their answer is remembered this long per process


class NoConsumer(RuntimeError):
    """No worker consumes the queue a task would be sent to; the message says which and what to do."""


def route(name: str, args, kwargs, options, task=None, **kw) -> dict:
    """Celery router (CELERY_TASK_ROUTES): the queue of a task sent without an explicit one (e.g. by beat)."""
    return {"queue": ROUTES.get(name, DEFAULT)}


def send(name: str, args: Sequence = (), queue: str | None = None, countdown: float | None = None) -> bool:
    """Send the task `name`; False (logged) when the broker cannot be reached."""
    try:
        _task(name).apply_async(args=list(args), queue=queue or ROUTES.get(name, DEFAULT),
                                           countdown=countdown)
    except Exception as exc:  # any transport's connection error: the caller's state waits for housekeeping
        logger.warning("Could not send %s%s to the task broker (%s); housekeeping sends it later",
                       name.rsplit(".", 1)[-1], tuple(args), exc)
        return False
    return True


def runs_inline() -> bool:
    """Tasks run in the sending process as they are sent (CELERY_TASK_ALWAYS_EAGER): a countdown is ignored."""
    return bool(celery_app.conf.task_always_eager)


def _task(name: str):
    """The registered task (each app's tasks.py is imported on first use, as a worker does at start)."""
    if name not in celery_app.tasks:
        celery_app.loader.import_default_modules()
    return celery_app.tasks[name]


def run_queue(mode: str, device: str) -> str:
    """The queue a training run is sent to: CUDA batch runs need a GPU worker."""
    return GPU if mode == "batch" and device == "cuda" else TRAINING


def send_run(run_id: int, queue: str) -> bool:
    return send(EXECUTE_RUN, [run_id], queue=queue)


def send_online_update() -> bool:
    """One debounced online update, REFIND_ONLINE_DEBOUNCE_SECONDS from now."""
    return send(LEARN_ONLINE, countdown=settings.ONLINE_DEBOUNCE_SECONDS)


def send_evaluation(version_id: int) -> bool:
    return send(EVALUATE_VERSION, [version_id])


def _inspect() -> frozenset[str] | None:
    try:
        if broker.problem() is not None:  # down: do not wait for publish retries; the send says it too
            raise ConnectionError(broker.problem())
        replies = celery_app.control.inspect(timeout=INSPECT_TIMEOUT_SECONDS).active_queues() or {}
    except Exception as exc:  # broker down: the send fails too and the run waits for housekeeping
        logger.warning("Cannot ask the workers which queues they consume: %s", exc)
        replies = {}
    return frozenset(queue["name"] for listed in replies.values() for queue in listed or ()) or None


# The queues running workers consume (Celery's inspect active_queues), remembered INSPECT_EVERY_SECONDS;
# None when no worker answered or the broker is unreachable: unknown. `.forget()` asks again next time.
consumed_queues = broker.Remembered(INSPECT_EVERY_SECONDS, _inspect)


def require_consumer(queue: str) -> None:
    """Raise NoConsumer when workers answer and none of them consumes `queue`. When no worker answers the
    task is sent anyway; a run nobody takes is failed after REFIND_QUEUE_WAIT_SECONDS (housekeeping)."""
    if runs_inline():
        return  # tasks run in this process
    queues = consumed_queues()
    if queues is None or queue in queues:
        return
    hint = " (device=cuda needs a GPU worker: docker compose --profile gpu)" if queue == GPU else ""
    raise NoConsumer(f"No worker consumes the {queue} queue{hint}; running workers consume "
                     f"{', '.join(sorted(queues))}. Nothing was started.")
