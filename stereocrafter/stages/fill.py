"""The weight-free inpainting stage of ``instant`` (``stereo.fill``): each hole filled from its
background side and from the background seen in the clip's other frames. No weights, no
download, nothing to load: pure torch on the pipeline's device (``catalog.MODELS["background-fill"]``),
a chunk of frames per call with no value read back by the host."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.stages.base import StageCost, WarmupCall
from stereocrafter.stages.frames import FRAME_CHUNK, FrameStage
from stereocrafter.stereo import fill
from stereocrafter.stereo.merge import working_size


class ChunkFill(torch.nn.Module):
    """``stereo.fill.fill_chunk`` as a module, the clip's memory carried in its ``state`` (what
    ``torch.compile`` compiles: one graph, no host sync)."""

    def forward(
        self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, state: fill.MemoryState
    ) -> tuple[torch.Tensor, fill.MemoryState, torch.Tensor, torch.Tensor]:
        return fill.fill_chunk(view, holes, disparity, state)


class ClipFill(torch.nn.Module):
    """A chunk of one clip's frames: the fill with what the clip's earlier chunks saw
    (``memory``, started afresh per clip) and what the chunk's later frames show."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.chunk = ChunkFill()
        self.device = device
        self.memory = fill.BackgroundMemory()

    def forward(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        out, state, shift, cut = self.chunk(view, holes, disparity, self.memory.state_for(view))
        self.memory.update(state, shift, cut)
        filled: torch.Tensor = out
        return filled


class BackgroundFillStage(FrameStage):
    """``stereo.fill`` behind the inpainting-stage interface (``stages.base.InpaintingStage``)."""

    name: ClassVar[str] = "background-fill"
    components: ClassVar[tuple[Any, ...]] = ()  # no file
    pipeline_type: ClassVar[type] = ClipFill
    pipeline: ClipFill

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> BackgroundFillStage:  # fmt: skip
        """Nothing is read; float32 on ``device`` whatever ``dtype``."""
        return cls(ClipFill(torch.device(device)))

    def start(self) -> None:
        self.pipeline.memory = fill.BackgroundMemory()

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        size = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        return [WarmupCall(BackgroundFillStage.name, FRAME_CHUNK, 1, size)]

    @staticmethod
    def cost(config: StereoConfig, frame_size: tuple[int, int]) -> StageCost:
        """No matrix product, no convolution: 0 FLOPs counted; its work is element-wise (running
        maxima, gathers, comparisons), whose bytes, ops and host syncs ``bench/traffic.py`` counts."""
        h, w = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        return StageCost(0.0, (), f"{w}x{h}: element-wise only")

    @property
    def compiled(self) -> torch.nn.Module:
        chunk: torch.nn.Module = self.pipeline.chunk
        return chunk

    def warm_up(self, call: WarmupCall) -> None:
        zeros = torch.zeros(call.frames, 3, *call.size, device=self.device)
        holes = torch.zeros(call.frames, 1, *call.size, dtype=torch.bool, device=self.device)
        self.pipeline.chunk(zeros, holes, zeros[:, :1], fill.empty_state(zeros))
