"""The pieces of s3transfer's ``TransferManager`` that a job's stop needs: daemon threads (an abandoned
transfer never holds a stopping process), a download that knows its object (no second HEAD; its
ranged GETs require the same ETag), and the wait for a transfer under the job's check (a stopped
transfer is cancelled, its manager shut down once its threads end)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future
from typing import Any

from s3transfer.futures import BaseExecutor, TransferFuture
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from stereocrafter.guard import Stop, call_checked


class DaemonThreads(BaseExecutor):
    """The transfer manager's executor (``concurrent.futures``' interface, as s3transfer uses it)
    on daemon threads, started as tasks arrive, up to ``max_workers``. The standard thread pool's
    threads are joined when the interpreter exits, so one blocked in a socket read of an
    abandoned transfer would hold a stopping service for its whole read time-out."""

    def __init__(self, max_workers: int | None = None) -> None:
        self._max = max_workers or 1
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        self._tasks.put((future, lambda *a: fn(*a, **kwargs), args))
        with self._lock:
            if self._idle == 0 and len(self._threads) < self._max:
                thread = threading.Thread(target=self._work, name="s3-transfer", daemon=True)
                self._threads.append(thread)
                thread.start()
            else:
                self._idle -= 1
        return future

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            future, fn, args = task
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as err:  # the transfer manager reads it from the future
                    future.set_exception(err)
            with self._lock:
                self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        if wait:
            for thread in self._threads:
                thread.join()


class KnownObject(BaseSubscriber):
    """Hands a download the size and ETag the service's own HeadObject found, so the transfer
    manager sends no second HEAD, and its ranged GETs require that same object (If-Match); closes
    the download's file when the transfer ends (done, failed or cancelled)."""

    def __init__(self, size: int, etag: str, target: Any) -> None:
        self.size, self.etag, self.target = size, etag, target

    def on_queued(self, future: TransferFuture, **_: Any) -> None:
        future.meta.provide_transfer_size(self.size)
        if self.etag:
            future.meta.provide_object_etag(self.etag)

    def on_done(self, future: TransferFuture, **_: Any) -> None:
        self.target.close()


def finish_transfer(
    manager: TransferManager,
    future: TransferFuture,
    stop: Stop | None,
    name: str,
    mapped: Callable[[Exception], Exception],
) -> None:
    """Wait for ``future`` under ``stop`` (``guard.call_checked``). The transfer's own failure is
    raised as ``mapped(err)``; what its check raises passes unchanged, the transfer cancelled and
    its manager shut down in the background once its threads end."""

    def result() -> None:
        try:
            future.result()
        except CancelledError:
            raise  # abandoned: what stopped it was raised in the job's thread
        except Exception as err:
            raise mapped(err) from err

    abandoned = threading.Event()

    def abandon() -> None:
        abandoned.set()
        future.cancel()

    try:  # the transfer has started: every stop must cancel it (no check before the first wait)
        call_checked(result, stop, name=name, abandon=abandon, check_first=False)
    finally:
        if abandoned.is_set():  # the manager's threads end after their current request
            threading.Thread(target=manager.shutdown, name=f"{name}-cleanup", daemon=True).start()
        else:
            manager.shutdown()
