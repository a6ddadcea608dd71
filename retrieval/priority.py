"""Run CPU-heavy calls at a lower scheduling priority than the request threads that ask for them.

Linux schedules every thread by its own nice value, so a pool of threads niced above the caller's does
the heavy part of a request (decoding and embedding an uploaded query) while the short requests that share
the process and its cores (a click: a few milliseconds of work) are given a core first. A thread can raise
its nice value but not lower it again without CAP_SYS_NICE: hence a pool of its own rather than renicing
request threads for the duration of a call. Elsewhere (nice 0, other systems) calls run in the caller.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
MAX_NICE = 19
POOL_THREADS = 16  # threads are started on demand; more than any web process runs requests at once


def per_thread_nice_supported() -> bool:
    """Linux only: elsewhere setpriority() on a thread id would renice the whole process (or fail)."""
    return sys.platform.startswith("linux")


def thread_nice() -> int:
    """The calling thread's nice value."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


class LowerPriority:
    """Calls run on a pool of threads `nice` steps below the priority of the thread that built the pool."""

    def __init__(self, nice: int, name: str = "low-priority", threads: int = POOL_THREADS) -> None:
        if not 0 <= nice <= MAX_NICE:
            raise ValueError(f"nice must be in [0, {MAX_NICE}], not {nice}")
        self.nice = nice if per_thread_nice_supported() else 0
        self._target = min(MAX_NICE, thread_nice() + self.nice) if self.nice else 0
        self._name, self._threads = name, threads
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, call: Callable[[], T]) -> T:
        """call() on a lower-priority thread (its result, or its exception raised here)."""
        if not self.nice:
            return call()
        return self._executor().submit(call).result()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:  # built on first use: after a pre-forking server has forked
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name,
                                                initializer=self._lower)
            return self._pool

    def _lower(self) -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self._target)
