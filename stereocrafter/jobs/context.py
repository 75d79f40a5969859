"""One job's context, passed as one value (the way an HTTP client passes one request object): its
request id, the resolved run config (``config.resolve``: built once at the edge), the settings,
the storage (S3 for the service's jobs, none for local files), the stop check (``guard.Stop``: the
job's deadline and SIGTERM), its timings, its working folder and the encoder with its quality.
The S3 jobs (``serving.jobs``) and the local jobs (``jobs.local``, the CLI, ``long.local``) share
it; functions take the context or the one thing they need from it.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stereocrafter.bounds import DEFAULT_QUALITY
from stereocrafter.config import StereoConfig
from stereocrafter.guard import NO_STOP, Stop

if TYPE_CHECKING:  # PyAV: imported when a job first encodes, not by the service's module
    from stereocrafter.media.encoders import Encoder


@dataclass(frozen=True)
class Encoding:
    """The encoder a job writes with (``media.encoders``; None: libx264) and its quality (CRF for
    libx264, CQ for NVENC, 0-51)."""

    encoder: Encoder = None  # type: ignore[assignment]  # set in __post_init__
    quality: int = DEFAULT_QUALITY

    def __post_init__(self) -> None:
        if self.encoder is None:
            from stereocrafter.media.encoders import LIBX264

            object.__setattr__(self, "encoder", LIBX264)

    def describe(self) -> dict[str, Any]:
        """What answers and reports say about it (``Encoder.describe``)."""
        return self.encoder.describe(self.quality)

    def label(self) -> str:
        return self.encoder.label(self.quality)


@dataclass
class Job:
    """Everything one job carries besides its inputs. ``timings`` (seconds per phase) fill in as
    it runs; ``started`` is the wall clock of its start (the answer's ``started_at``)."""

    config: StereoConfig = field(default_factory=StereoConfig)
    request_id: str = "local"
    settings: Any = None  # ``settings.Settings`` (the service's; None for a local job)
    storage: Any = None  # ``serving.storage.S3Storage`` for the service's jobs
    stop: Stop = NO_STOP
    encoding: Encoding = field(default_factory=Encoding)
    tiny: bool = False  # made with the random test weights (shown in every answer and report)
    # the pipeline's device and weights' digests (``StereoPipeline.provenance``): named in the records
    made_by: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    # Cost: the monotonic clock when it took its slot (the GPU: the service builds the job then), and
    # the price of one slot-hour (the instance's hourly price / its slots; None: not configured).
    held_since: float = field(default_factory=time.monotonic)
    slot_hour_price: float | None = None

    def gpu_seconds(self) -> float:
        """How long this job has held its slot (its GPU), so far."""
        return round(time.monotonic() - self.held_since, 3)

    def cost(self) -> float | None:
        """Its share of the instance's price so far (None without a configured price)."""
        if self.slot_hour_price is None:
            return None
        return round(self.gpu_seconds() / 3600 * self.slot_hour_price, 6)

    @contextmanager
    def folder(self) -> Iterator[Path]:
        """The job's working folder: a temporary one under ``STEREOCRAFTER_WORK_DIR`` named after
        the request, always removed."""
        work_dir = self.settings.work_dir if self.settings is not None else None
        with tempfile.TemporaryDirectory(prefix=f"job-{self.request_id}-", dir=work_dir) as tmp:
            yield Path(tmp)

    def timed(self, phase: str, since: float) -> None:
        """Record ``phase`` as the time from ``since`` (``time.perf_counter()``) to now."""
        self.timings[phase] = time.perf_counter() - since
