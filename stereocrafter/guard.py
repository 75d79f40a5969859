"""A job's deadline (and the service's shutdown), checked where the pipeline can stop cleanly.

``Deadline`` is counted from the request's arrival, so the wait in the queue counts. The pipeline
calls ``check()`` after every UNet evaluation (through the progress hook, ``StageProgress``) and
between its stages; the service checks it too before downloading and before converting. Passing
it raises ``DeadlineExceededError`` (504): the job unwinds as after any error, so the output file
is aborted, nothing is uploaded, the temporary files are removed and the GPU is freed for the
next job.

``STOPPING`` is set when the service is told to stop (SIGTERM: SageMaker and Docker kill after a
10-30 s grace period); the same checks then raise ``ServiceStoppingError`` (503), so the job in
flight ends within one UNet evaluation, answers its caller and writes nothing, and the server
exits in time instead of being killed mid-job.
"""

from __future__ import annotations

import threading
import time

from stereocrafter.errors import DeadlineExceededError, ServiceStoppingError

STOPPING = threading.Event()


class Deadline:
    def __init__(self, seconds: float, *, since: float | None = None, why: str = "") -> None:
        self.seconds = seconds
        self.since = time.monotonic() if since is None else since
        self.why = why  # which limit it is, for the message

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
