"""What one run of ``StereoPipeline`` takes and gives besides its config (``stereocrafter.config``):
its hooks (``RunHooks``: progress, the stop check, observer, grid sink), the frame and sink types,
and ``StereoResult``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.guard import Stop

FrameChunks = Iterator[np.ndarray]  # (t, H, W, 3) uint8 RGB chunks, in order


HostChunks = Iterator[np.ndarray] | Iterator[torch.Tensor]  # the same, as numpy or torch


OpenFrames = Callable[[], FrameChunks]


Sink = Callable[[np.ndarray], None]  # receives (t, H_out, W_out, 3) uint8


Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Observer(Protocol):
    """Sees what a run holds without changing it (``report.QualityReport`` is one): the clip's
    facts once, before the stereo pass, then every composed chunk's full-size tensors."""

    def on_start(self, *, num_frames: int, width: int, height: int, config: StereoConfig,
                 depth_range: tuple[float, float], seams: list[int]) -> None: ...  # fmt: skip

    def on_frames(self, start: int, left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor,
                  right: torch.Tensor) -> None: ...  # fmt: skip


@dataclass(frozen=True)
class RunHooks:
    """Everything a caller hooks into one run, as one value (diffusers' ``callback_on_step_end``
    is the model): none of them changes the output.

    - ``progress(stage, done, total)``: frames finished per stage ("depth", "inpainting").
    - ``stop``: the job's stop check (``guard.Stop``; a job context's ``stop``), whose ``check()``
      runs after every UNet evaluation, before every VAE decode and between stages; whatever it
      raises (``guard.Deadline``'s 504, SIGTERM's 503) stops the run there.
    - ``observer``: sees the clip's facts and every composed chunk (``report.QualityReport``).
    - ``grid_sink``: receives the reference's 2x2 debug grid of every chunk, (t, 2H, 2W, 3) uint8.
    """

    progress: Progress | None = None
    stop: Stop | None = None
    observer: Observer | None = None
    grid_sink: Sink | None = None


NO_HOOKS = RunHooks()


@dataclass
class StereoResult:
    num_frames: int
    width: int  # of the composed output
    height: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
