"""``guard``: a job's stop check (its deadline, SIGTERM), in loops and around blocking calls."""

from __future__ import annotations

import threading
import time

import pytest

from stereocrafter.errors import DeadlineExceededError, ServiceStoppingError
from stereocrafter.guard import NO_STOP, STOPPING, Deadline, Every, call_checked


def test_a_deadline_raises_once_passed_and_sigterm_first() -> None:
    deadline = Deadline(60.0)
    deadline.check()
    deadline.since -= 61
    with pytest.raises(DeadlineExceededError, match="deadline of 60 s"):
        deadline.check()
    STOPPING.set()
    try:
        with pytest.raises(ServiceStoppingError):
            Deadline(60.0).check()
    finally:
        STOPPING.clear()
    NO_STOP.check()  # a local job: never stopped


def test_every_checks_at_most_every_so_often() -> None:
    calls: list[float] = []

    class Counting:
        def check(self) -> None:
            calls.append(time.monotonic())

    every = Every(Counting(), seconds=0.05)
    for _ in range(100):
        every()
    assert calls == []  # less than 0.05 s went by
    time.sleep(0.06)
    every()
    assert len(calls) == 1
    Every(None)()  # nothing to check


def test_a_blocking_call_is_abandoned_when_the_check_raises() -> None:
    release = threading.Event()
    abandoned: list[bool] = []
    deadline = Deadline(0.2)
    started = time.monotonic()
    with pytest.raises(DeadlineExceededError):
        call_checked(
            lambda: release.wait(10), deadline, name="test-wait", abandon=lambda: abandoned.append(True)
        )
    assert time.monotonic() - started < 2 and abandoned == [True]
    release.set()
    assert call_checked(lambda: 7, Deadline(10), name="test-quick") == 7
