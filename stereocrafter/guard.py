"""A job's deadline (and the service's shutdown), checked where the pipeline can stop cleanly.

``Deadline`` is counted from the request's arrival, so the wait in the queue counts. The pipeline
calls ``check()`` after every UNet evaluation (through the progress hook, ``StageProgress``) and
between its stages; the service checks it too before downloading and before converting. Passing
it raises ``DeadlineExceededError`` (504): the job unwinds as after any error, so the output file
is aborted, nothing is uploaded, the temporary files are removed and the GPU is freed for the
next job.

Outside the UNets the same check runs in every other phase of a job that can take time (see
docs/service.md "The job budget"): ``Every`` in loops (packets counted, depth frames decoded, segments
copied), ``call_checked`` around every S3 call and transfer, which run in a daemon thread so
that a hung socket read cannot hold the job or the process.

``STOPPING`` is set when the service is told to stop (SIGTERM: SageMaker and Docker kill after a
10-30 s grace period); the same checks then raise ``ServiceStoppingError`` (503), so the job in
flight ends within one UNet evaluation, answers its caller and writes nothing, and the server
exits in time instead of being killed mid-job.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TYPE_CHECKING, Protocol, TypeVar

from stereocrafter.errors import DeadlineExceededError, ServiceStoppingError

if TYPE_CHECKING:
    from stereocrafter.settings import Settings

STOPPING = threading.Event()
T = TypeVar("T")


class Stop(Protocol):
    """A job's stop check, one object wherever the job can stop (the pipeline's hooks, storage,
    decoding, encoding): ``check()`` raises when the job must stop (``Deadline``: its deadline
    or SIGTERM), else returns."""

    def check(self) -> None: ...


class AsksDeadline(Protocol):
    """A request that may carry its own deadline (``serving.schemas.InvocationRequest``)."""

    @property
    def deadline_s(self) -> float | None: ...


class Deadline:
    def __init__(self, seconds: float, *, since: float | None = None, why: str = "") -> None:
        self.seconds = seconds
        self.since = time.monotonic() if since is None else since
        self.why = why  # which limit it is, for the message

    @classmethod
    def for_job(cls, settings: Settings, request: AsksDeadline, arrived: float) -> Deadline:
        """The job's one budget, counted from its arrival (``time.monotonic()``), the wait in the
        queue included: the request's ``deadline_s`` or ``STEREOCRAFTER_JOB_TIMEOUT_S``, whichever
        is shorter. The message names the limit that applied."""
        budget, why = settings.job_timeout_s, " (STEREOCRAFTER_JOB_TIMEOUT_S)"
        if request.deadline_s is not None and request.deadline_s < budget:
            budget, why = request.deadline_s, " (deadline_s)"
        return cls(budget, since=arrived, why=why)

    @property
    def remaining(self) -> float:
        return self.since + self.seconds - time.monotonic()

    def check(self) -> None:
        if STOPPING.is_set():
            raise ServiceStoppingError(
                "the service is shutting down; the job was stopped and nothing was written: send it again"
            )
        if self.remaining < 0:
            raise DeadlineExceededError(
                f"the job passed its deadline of {self.seconds:g} s{self.why} (counted from its arrival, "
                "the wait in the queue included); it was stopped and nothing was written"
            )


class _NoStop:
    """A job that is never stopped (a local conversion without a deadline)."""

    def check(self) -> None:
        return None


NO_STOP: Stop = _NoStop()

CHECK_EVERY_S = 0.5  # how often loops outside the UNets (demuxing, decoding, copying) check
POLL_S = 0.25  # how often a wait on another thread (an S3 call or transfer) checks


class Every:
    """A loop's check, run at most every ``seconds``: call it once per iteration (a packet, a
    frame); it calls ``stop.check()`` when that much time has passed since the last one.
    ``None`` checks nothing."""

    def __init__(self, stop: Stop | None, seconds: float = CHECK_EVERY_S) -> None:
        self.stop, self.seconds = stop, seconds
        self._last = time.monotonic()

    def __call__(self) -> None:
        if self.stop is None:
            return
        now = time.monotonic()
        if now - self._last >= self.seconds:
            self._last = now
            self.stop.check()


def call_checked(
    work: Callable[[], T],
    stop: Stop | None,
    *,
    name: str,
    abandon: Callable[[], None] | None = None,
    check_first: bool = True,
) -> T:
    """``work()`` in a daemon thread while this thread runs ``stop.check()`` every ``POLL_S``.

    A blocking call (an S3 request whose socket read hangs for up to the read time-out, a
    transfer) cannot be interrupted from Python. When the check raises (the deadline, SIGTERM),
    ``abandon()`` is called (a transfer's ``cancel``: its threads stop at their next chunk) and
    the error is raised at once; the thread finishes on its own time, bounded by the S3
    time-outs, and, being a daemon, never holds the process at exit. ``stop=None`` runs
    ``work()`` here.

    ``check_first``: the check before ``work`` starts (a request is not sent past the deadline);
    False when ``work`` must run in any case (it releases what it holds: an encoder's finish,
    told by ``abandon`` to keep nothing).
    """
    if stop is None:
        return work()
    if check_first:
        stop.check()
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(work())
        except BaseException as err:  # handed to the waiting thread, which re-raises it
            future.set_exception(err)

    threading.Thread(target=run, name=name, daemon=True).start()
    while not wait([future], timeout=POLL_S).done:
        try:
            stop.check()
        except BaseException:
            if abandon is not None:
                abandon()
            raise
    return future.result()
