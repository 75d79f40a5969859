"""The weight-free inpainting stage of ``instant`` (``stereo.fill``): each hole filled from its
background side and from the background seen in the clip's earlier frames. No weights, no
download, nothing to load: pure torch on the pipeline's device (``catalog.MODELS["background-fill"]``)."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.stages.base import WarmupCall
from stereocrafter.stages.frames import FrameStage
from stereocrafter.stereo import fill
from stereocrafter.stereo.merge import working_size


class SpatialFill(torch.nn.Module):
    """Steps 1 and 2 of ``stereo.fill`` on a batch (what ``torch.compile`` may speed up)."""

    def forward(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        return fill.spatial_fill(view, holes, disparity)


class PerFrameFill(torch.nn.Module):
    """One frame: the spatial fill, then what the clip's memory saw there before and what the
    chunk's later frames show (``stereo.fill.fill``, frame by frame)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.spatial = SpatialFill()
        self.device = device
        self.memory = fill.BackgroundMemory()
        self.ahead: fill.LookAhead | None = None
        self.cursor = 0  # the frame of the prepared chunk the next call fills

    def prepare(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> None:
        content = fill.hole_sides(holes, disparity)[4]
        self.ahead, self.cursor = fill.LookAhead(view, holes, disparity, content), 0

    def forward(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        tolerance = fill.DISPARITY_TOLERANCE_PX
        out = self.spatial(view[None], holes[None], disparity[None])[0]
        content = fill.hole_sides(holes[None], disparity[None])[4][0]
        past = self.memory.recall(out, holes, content, tolerance)
        ahead = None
        if self.ahead is not None and self.cursor < len(self.ahead.usable):
            i = self.cursor
            ahead = (self.ahead.usable[i], self.ahead.colour[i], self.ahead.age[i])
        self.cursor += 1
        filled: torch.Tensor = fill.combine(out, past, ahead)
        self.memory.observe(view, holes, disparity)
        return filled


class BackgroundFillStage(FrameStage):
    """``stereo.fill`` behind the inpainting-stage interface (``stages.base.InpaintingStage``)."""

    name: ClassVar[str] = "background-fill"
    components: ClassVar[tuple[Any, ...]] = ()  # no file
    pipeline_type: ClassVar[type] = PerFrameFill
    pipeline: PerFrameFill

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> BackgroundFillStage:  # fmt: skip
        """Nothing is read; float32 on ``device`` whatever ``dtype``."""
        return cls(PerFrameFill(torch.device(device)))

    def start(self) -> None:
        self.pipeline.memory, self.pipeline.ahead = fill.BackgroundMemory(), None

    def prepare(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> None:
        self.pipeline.prepare(view, holes, disparity)

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        size = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        return [WarmupCall(BackgroundFillStage.name, 1, 1, size)]

    @property
    def compiled(self) -> torch.nn.Module:
        spatial: torch.nn.Module = self.pipeline.spatial
        return spatial

    def warm_up(self, call: WarmupCall) -> None:
        zeros = torch.zeros(1, 3, *call.size, device=self.device)
        holes = torch.zeros(1, 1, *call.size, dtype=torch.bool, device=self.device)
        self.pipeline.spatial(zeros, holes, zeros[:, :1])
