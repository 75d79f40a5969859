"""Host work overlapped with the GPU: decoding ahead in a thread, encoding behind in a thread.

``prefetch`` runs an iterator (the PyAV decoder) in a background thread, a few items ahead of
its consumer, optionally turning each item into what the consumer needs there (a pinned host
tensor, so the copy to the GPU can be asynchronous). ``BackgroundSink`` hands items to a sink
(the H.264 encoder) in another thread, so that libx264 encodes chunk k while the GPU works on
chunk k+1. Both keep their queues short (memory stays bounded by a few chunks) and re-raise the
worker's exception in the caller. PyAV and torch release the GIL in their heavy calls, so the
threads really overlap.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

T = TypeVar("T")
U = TypeVar("U")

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def prefetch(items: Iterator[T], transform: Callable[[T], U] | None = None, depth: int = 2) -> Iterator[U]:
    """Yield ``transform(item)`` for each item of ``items``, produced by a background thread at
    most ``depth`` items ahead. Closing the returned generator stops the thread."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                value = transform(item) if transform is not None else item
                while not stop.is_set():
                    try:
                        slots.put(value, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            slots.put(_DONE)
        except BaseException as err:  # handed to the consumer, raised there
            slots.put(_Failure(err))
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # e.g. a decoder generator: release its container now
                close()

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            value = slots.get()
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise value.error
            yield value
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                slots.get_nowait()
            except queue.Empty:
                worker.join(0.05)


class BackgroundSink(Generic[T]):
    """``with BackgroundSink(writer.write) as sink: sink(frames)``: calls the sink in a worker
    thread, in order, at most ``depth`` items behind. An error in the sink is raised by the next
    call or by the exit of the ``with`` block; on an error inside the block, queued items are
    dropped and the worker stops."""

    def __init__(self, sink: Callable[[T], None], depth: int = 2) -> None:
        self._sink = sink
        self.takes_yuv420p = False  # the pipeline hands YUV 4:2:0 planes (``media.yuv``), not RGB
        self._slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancelled = threading.Event()
        self._worker = threading.Thread(target=self._consume, name="sink", daemon=True)

    def __enter__(self) -> BackgroundSink[T]:
        self._worker.start()
        return self

    def _consume(self) -> None:
        while True:
            item = self._slots.get()
            if item is _DONE:
                return
            if self._error is not None or self._cancelled.is_set():
                continue  # drain without calling the sink
            try:
                self._sink(item)
            except BaseException as err:
                self._error = err

    def __call__(self, item: T) -> None:
        if self._error is not None:
            raise self._error
        self._slots.put(item)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            self._cancelled.set()
        self._slots.put(_DONE)
        self._worker.join()
        if exc_type is None and self._error is not None:
            raise self._error
