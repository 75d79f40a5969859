"""Video Depth Anything Small (``models.vda_depth``), the licence-clean depth stage: one forward
pass per window of 32 frames at its processing size (518 on the short side), deterministic (no
generator, no VAE). Apache-2.0 (``catalog.MODELS["vda-small"]``)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from stereocrafter.catalog import MODELS, VDA_CHECKPOINT
from stereocrafter.config import StereoConfig
from stereocrafter.models import vda_depth
from stereocrafter.models.vda_depth import VdaDepthPipeline
from stereocrafter.stages.base import FrameSource, WarmupCall
from stereocrafter.stages.components import Component, resolve_all
from stereocrafter.weights.integrity import is_tiny

logger = logging.getLogger(__name__)

CHECKPOINT = Component("vda", MODELS["vda-small"].repo, ("",), VDA_CHECKPOINT)  # one file: the state dict


def load_pipeline(
    weights_dir: str | os.PathLike[str], *, device: torch.device | str = "cpu"
) -> VdaDepthPipeline:
    """Video Depth Anything Small from ``weights_dir`` (``models.vda_checkpoint.load_vda``: the
    published state dict, read with ``weights_only`` and loaded strictly). Its weights stay float32
    and it runs under float16 autocast on CUDA, as the published code does."""
    from stereocrafter.models.vda_checkpoint import load_vda

    part = resolve_all(weights_dir, VdaStage.components)[CHECKPOINT.name]
    if is_tiny(weights_dir):
        logger.warning("%s holds tiny random test weights: VDA depth maps are meaningless", weights_dir)
    model = load_vda(part.folder / VDA_CHECKPOINT, device=device)
    model.requires_grad_(False)
    return VdaDepthPipeline(model)


class VdaStage:
    """VDA-S behind the depth-stage interface (``stages.base.DepthStage``)."""

    name: ClassVar[str] = "vda-small"
    components: ClassVar[tuple[Component, ...]] = (CHECKPOINT,)
    pipeline_type: ClassVar[type] = VdaDepthPipeline

    def __init__(self, pipeline: VdaDepthPipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> VdaStage:  # fmt: skip
        """Float32 weights whatever ``dtype`` (the published code's autocast does the rest)."""
        return cls(load_pipeline(weights_dir, device=device))

    @staticmethod
    def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]:
        return vda_depth.processing_size(height, width, config.depth_input_size)

    @staticmethod
    def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Bicubic, no antialiasing, not clamped: the published transform's OpenCV INTER_CUBIC on
        the [0, 1] frame (the same kernel, a = -0.75; OpenCV reflects at the border where torch
        repeats the edge pixel, which changes the outermost pixel or two)."""
        if tuple(frames.shape[-2:]) == tuple(size):
            return frames
        return F.interpolate(frames, size=size, mode="bicubic", align_corners=False)

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]:
        """One model call per window of 32; each finishes its window's new frames."""
        return [float(window.new) for window in vda_depth.plan_windows(num_frames)]

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        """A full window of 32 at the processing size."""
        return [WarmupCall(VdaStage.name, vda_depth.WINDOW, 1, VdaStage.processing_size(*frame_size, config))]

    @property
    def device(self) -> torch.device:
        return self.pipeline.device

    @property
    def compiled(self) -> torch.nn.Module:
        return self.pipeline.model

    def warm_up(self, call: WarmupCall) -> None:
        frames = torch.zeros(call.frames, 3, *call.size, device=self.pipeline.device)
        self.pipeline._window_depth(frames)

    @property
    def watched(self) -> torch.nn.Module:
        return self.pipeline.model

    @property
    def checked(self) -> list[torch.nn.Module]:
        return []

    def iter_depth(
        self, frames: FrameSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Aligned at the source's size when the frames say it (``SequentialFrames.frame_size``), as
        the published code aligns."""
        return self.pipeline.iter_depth(frames, frame_size=getattr(frames, "frame_size", None))
