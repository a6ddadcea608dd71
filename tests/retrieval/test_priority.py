"""retrieval/priority.py: calls run on threads niced above their caller's; results and errors come back."""

from __future__ import annotations

import threading

import pytest

from retrieval.priority import MAX_NICE, LowerPriority, per_thread_nice_supported, thread_nice

# Nice values per thread exist only on Linux (CI's system); elsewhere calls run in the caller (tested below).
linux_only = pytest.mark.skipif(not per_thread_nice_supported(), reason="per-thread nice values exist only on Linux")


def _where() -> tuple[int, int]:
    return threading.get_native_id(), thread_nice()


@linux_only
def test_a_call_runs_on_a_nicer_thread_and_the_caller_keeps_its_priority() -> None:
    caller = _where()
    thread, nice = LowerPriority(5).run(_where)
    assert thread != caller[0]
    assert nice == min(MAX_NICE, caller[1] + 5)
    assert _where() == caller


@linux_only
def test_the_call_s_exception_is_raised_in_the_caller() -> None:
    def fail() -> None:
        raise ValueError("not an image")

    with pytest.raises(ValueError, match="not an image"):
        LowerPriority(3).run(fail)


def test_nice_zero_runs_in_the_caller() -> None:
    assert LowerPriority(0).run(_where) == _where()


def test_off_linux_calls_run_in_the_caller(monkeypatch) -> None:
    monkeypatch.setattr("retrieval.priority.sys.platform", "darwin")
    lowered = LowerPriority(5)
    assert lowered.nice == 0 and lowered.run(_where) == _where()


@pytest.mark.parametrize("nice", [-1, 20])
def test_a_nice_value_linux_does_not_have_is_refused(nice: int) -> None:
    with pytest.raises(ValueError, match=r"\[0, 19\]"):
        LowerPriority(nice)
