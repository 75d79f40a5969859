"""The depth stage behind one interface, whichever model runs it: frames in, the clip's raw
affine-invariant inverse depth (larger = nearer) at the model's processing size out, window by
window, with the window plan exposed for progress.

``StereoConfig.depth_model`` names the model; ``STAGES`` maps the name to its stage class, and
nothing outside this module and the presets' tables branches on it. A stage class gives:

- ``processing_size(height, width, config)``: the size the model sees, hence the size of the raw
  depth a run keeps and a depth task stores (class-level: no model needed);
- ``resize(frames, size)``: the model's own frame resampling to that size;
- ``increments(num_frames, config)``: frames finished per call of its ``watched`` module, over the
  stage's own window plan (``progress.StageProgress``);
- ``watched`` and ``checked``: the module whose every call advances progress and runs the job's
  stop check, and the modules before whose calls the check runs too (a VAE decoder);
- ``iter_depth(frames, config, generator)``: (start, (t, 1, h, w) float32 on the CPU) in order.

DepthCrafter (``models.depth``) is a video diffusion model: steps x passes UNet calls per window of
110 or 70 frames, then a VAE decode. Video Depth Anything Small (``models.vda_depth``) is one
forward pass per window of 32 frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Protocol

import torch
import torch.nn.functional as F

from stereocrafter.config import StereoConfig
from stereocrafter.models import depth as depthcrafter
from stereocrafter.models import vda_depth
from stereocrafter.models.depth import DepthCrafterPipeline, FrameSource
from stereocrafter.models.vda_depth import VdaDepthPipeline


class DepthStage(Protocol):
    model: ClassVar[str]
    pipeline: Any

    @staticmethod
    def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]: ...

    @staticmethod
    def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor: ...

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]: ...

    @property
    def watched(self) -> torch.nn.Module: ...

    @property
    def checked(self) -> list[torch.nn.Module]: ...

    def iter_depth(
        self, frames: FrameSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]: ...


class DepthCrafterStage:
    """DepthCrafter on SVD: the reference's depth stage (``models.depth.DepthCrafterPipeline``)."""

    model: ClassVar[str] = "depthcrafter"
    pipeline_type: ClassVar[type] = DepthCrafterPipeline

    def __init__(self, pipeline: DepthCrafterPipeline) -> None:
        self.pipeline = pipeline

    @staticmethod
    def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]:
        return depthcrafter.processing_size(height, width, config.depth_max_res)

    @staticmethod
    def resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return depthcrafter.resize_frames(frames, size)

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]:
        """Each window's new frames spread over its UNet calls (steps x 1 or 2 passes)."""
        calls = config.depth_steps * (2 if config.depth_guidance > 1.0 else 1)
        windows = depthcrafter.plan_windows(num_frames, config.depth_window, config.depth_overlap)
        return [window.new / calls for window in windows for _ in range(calls)]

    @property
    def watched(self) -> torch.nn.Module:
        unet: torch.nn.Module = self.pipeline.unet
        return unet

    @property
    def checked(self) -> list[torch.nn.Module]:
        return [self.pipeline.vae.decoder]

    def iter_depth(
        self, frames: FrameSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        return self.pipeline.iter_depth(
            frames,
            num_inference_steps=config.depth_steps,
            guidance_scale=config.depth_guidance,
            window_size=config.depth_window,
            overlap=config.depth_overlap,
            noise_aug_strength=config.noise_aug_strength,
            decode_chunk_size=config.depth_decode_chunk,
            generator=generator,
        )


class VdaStage:
    """Video Depth Anything Small (``models.vda_depth.VdaDepthPipeline``): deterministic, one
    forward pass per window (no generator, no VAE)."""

    model: ClassVar[str] = "vda-small"
    pipeline_type: ClassVar[type] = VdaDepthPipeline

    def __init__(self, pipeline: VdaDepthPipeline) -> None:
        self.pipeline = pipeline

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

    @property
    def watched(self) -> torch.nn.Module:
        return self.pipeline.model

    @property
    def checked(self) -> list[torch.nn.Module]:
        return []

    def iter_depth(
        self, frames: FrameSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        return self.pipeline.iter_depth(frames)


STAGES: Mapping[str, type[DepthCrafterStage] | type[VdaStage]] = {
    DepthCrafterStage.model: DepthCrafterStage,
    VdaStage.model: VdaStage,
}


def stage_class(config: StereoConfig) -> type[DepthCrafterStage] | type[VdaStage]:
    return STAGES[config.depth_model]


def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]:
    """The raw depth's size for a ``height`` x ``width`` clip under ``config``'s depth model."""
    return stage_class(config).processing_size(height, width, config)


def wrap(pipeline: Any) -> DepthStage:
    """The stage of a loaded depth pipeline (a ``DepthCrafterPipeline`` or a ``VdaDepthPipeline``);
    a stage (anything with ``DepthStage``'s members: ``tests/long_scene.py`` has one) as it is."""
    if all(hasattr(pipeline, member) for member in ("model", "processing_size", "watched", "iter_depth")):
        return pipeline  # type: ignore[no-any-return]
    for stage in STAGES.values():
        if isinstance(pipeline, stage.pipeline_type):
            return stage(pipeline)  # type: ignore[arg-type]
    raise TypeError(f"not a depth pipeline: {type(pipeline).__name__}")
