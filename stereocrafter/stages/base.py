"""The two small interfaces a stage implements, one per kind of stage, and what a stage tells the
compile step. A depth stage turns frames into the clip's raw depth; an inpainting stage fills the
holes of the splatted right view. Each stage says:

- what it loads: ``name`` (its ``catalog.MODELS`` card: repo, licence), ``components`` (its files,
  those of the models it shares included) and ``load(weights_dir, ...)``;
- how it is sized: ``processing_size`` (depth; the inpainting's working size is the config's,
  ``stereo.merge.working_size``);
- what it costs: ``warmup_calls`` (the model calls of one job at a size, which the compile warm-up
  runs) and, for the licence-clean inpainting stages, ``cost`` (``StageCost``: FLOPs per frame at a
  frame size, counted from the stage's own architecture; ``bench/flops.py`` asks them, and still
  counts the diffusion stages' published architectures by their names);
- how it runs: ``iter_depth`` / ``iter_inpaint`` over the config, with ``increments`` (frames
  finished per call of its ``watched`` module: progress) and ``checked`` (modules before whose
  calls the job's stop check runs too: a VAE decoder).

The pipeline, the loader and the compile step use these and nothing else, so a new model is a new
sibling module, one registry entry (``stages.registry``) and its preset and catalog rows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch

from stereocrafter.config import StereoConfig


@dataclass(frozen=True)
class WarmupCall:
    """One model call a job of a served preset makes at the warm-up size: which stage's model, and
    the shape it sees (frames, batch, latent or processing height x width)."""

    model: str  # the stage's name ("depthcrafter", "vda-small", "stereocrafter")
    frames: int
    batch: int
    size: tuple[int, int]


@dataclass(frozen=True)
class StageCost:
    """What one output frame of a stage costs at a frame size, counted from the stage's own
    architecture and procedure (no weights, no device): FLOPs (matrix products and convolutions:
    ``torch.utils.flop_counter``), the model calls that make them (``calls``: each call's FLOPs and
    how many a frame needs) and what the count leaves out (``note``: element-wise work, which
    ``bench/traffic.py`` counts as bytes, ops and host syncs by running the stage)."""

    flops_per_frame: float
    calls: tuple[tuple[WarmupCall, float, float], ...]  # (call, FLOPs of one, calls per frame)
    note: str


class FrameSource(Protocol):
    """Frames by increasing index range: (t, 3, h, w) float32 in [0, 1] on the device (at the stage's
    processing size; ``frame_size``, where a source has it: the clip's own (height, width))."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> torch.Tensor: ...


class HoleSource(Protocol):
    """The splatted right view and its occlusion by index range at the working size:
    ((t, 3, h, w) in [0, 1], (t, 1, h, w) with 1 = hole)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]: ...

    def disparity(self, index: slice) -> torch.Tensor:
        """(t, 1, h, w): the right view's disparity in working pixels (larger = nearer) of the range
        just served; only for stages whose ``needs_disparity`` is true."""
        ...


class Stage(Protocol):
    """What both kinds share."""

    name: ClassVar[str]
    components: ClassVar[tuple[Any, ...]]  # ``stages.components.Component``s it reads
    pipeline: Any  # the loaded model pipeline (``models``)

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> Stage: ...  # fmt: skip

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def compiled(self) -> torch.nn.Module: ...  # what ``torch.compile`` speeds up

    def warm_up(self, call: WarmupCall) -> None: ...

    @property
    def watched(self) -> torch.nn.Module: ...

    @property
    def checked(self) -> list[torch.nn.Module]: ...


class DepthStage(Stage, Protocol):
    @staticmethod
    def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]: ...

    @staticmethod
    def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor: ...

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]: ...

    def iter_depth(
        self, frames: FrameSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, (t, 1, h, w) float32 on the CPU) in order: the raw affine-invariant inverse
        depth (larger = nearer) at the processing size."""
        ...


class InpaintingStage(Stage, Protocol):
    @staticmethod
    def plan(num_frames: int, config: StereoConfig) -> list[Any]:
        """The stage's chunks (``models.inpainting.Chunk``: start, end, reused frames)."""
        ...

    @staticmethod
    def increments(chunks: list[Any], config: StereoConfig) -> list[float]: ...

    def iter_inpaint(
        self, source: HoleSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(start, right view (t, 3, h, w) in [0, 1] on the device) chunk by chunk, in order: the
        frames each chunk keeps."""
        ...
