"""Decoding ahead and encoding behind in threads: order, bounded queues, errors where they belong."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from stereocrafter.media.streams import BackgroundSink, prefetch


def test_prefetch_keeps_order_transforms_in_its_thread_and_stays_ahead() -> None:
    produced: list[int] = []
    threads: set[str] = set()

    def numbers() -> Iterator[int]:
        for i in range(10):
            produced.append(i)
            yield i

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    items = prefetch(numbers(), square, depth=2)
    assert next(items) == 0
    time.sleep(0.2)
    assert len(produced) <= 4  # one handed out, two queued, one waiting to be queued
    assert list(items) == [x * x for x in range(1, 10)]
    assert threads == {"prefetch"}


def test_prefetch_raises_the_producers_error_in_the_consumer() -> None:
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("corrupt frame 2")

    items = prefetch(broken())
    assert next(items) == 1
    with pytest.raises(ValueError, match="corrupt frame 2"):
        next(items)


def test_closing_prefetch_stops_the_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = prefetch(endless())
    assert next(items) == 0
    items.close()
    assert closed.wait(5)
    assert not any(t.name == "prefetch" for t in threading.enumerate())


def test_background_sink_calls_in_order_and_waits_at_exit() -> None:
    got: list[int] = []

    def slow(x: int) -> None:
        time.sleep(0.01)
        got.append(x)

    with BackgroundSink(slow) as sink:
        for i in range(20):
            sink(i)
    assert got == list(range(20))


def test_background_sink_error_surfaces_and_stops_the_sink() -> None:
    got: list[int] = []

    def fail_on_three(x: int) -> None:
        if x == 3:
            raise OSError("disk full")
        got.append(x)

    with pytest.raises(OSError, match="disk full"), BackgroundSink(fail_on_three, depth=1) as sink:
        for i in range(50):
            sink(i)
            time.sleep(0.005)
    assert got == [0, 1, 2]


def test_background_sink_drops_queued_items_after_an_error_in_the_block() -> None:
    got: list[int] = []

    def slow(x: int) -> None:
        time.sleep(0.3)  # still writing item 0 when the block fails
        got.append(x)

    with pytest.raises(RuntimeError, match="pipeline failed"), BackgroundSink(slow, depth=3) as sink:
        sink(0)
        sink(1)
        sink(2)
        raise RuntimeError("pipeline failed")
    assert got in ([], [0])  # at most the item already being written; the queued ones are dropped
