"""DepthCrafter on Stable Video Diffusion, the reference's depth stage (``models.depth``): a video
diffusion model run for steps x passes UNet calls per window of 70 (or 110) frames, then a VAE
decode. Research use only (``catalog.MODELS["depthcrafter"]``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import torch

from stereocrafter.catalog import MODELS
from stereocrafter.config import StereoConfig
from stereocrafter.models import depth as depthcrafter
from stereocrafter.models.depth import DepthCrafterPipeline
from stereocrafter.stages.base import FrameSource, WarmupCall
from stereocrafter.stages.components import (
    SVD_COMPONENTS,
    Component,
    UNetStage,
    assemble,
    load_unet,
)

UNET = Component(
    "depth_unet",
    MODELS["depthcrafter"].repo,
    ("", "unet"),
    "config.json",
    ("diffusion_pytorch_model.safetensors",),
)


def load_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    svd: dict[str, object] | None = None,
) -> DepthCrafterPipeline:
    """The DepthCrafter pipeline from ``weights_dir`` on ``device`` (fp16 on CUDA, fp32 on CPU by
    default). Raises ``WeightsMissingError`` before loading anything if a file is missing.
    ``svd`` reuses already loaded SVD components (``components.shared_svd``)."""
    from stereocrafter.models.depth import DiffusersUNetSpatioTemporalConditionModelDepthCrafter as UNetClass

    unet, parts, device, dtype = load_unet(
        weights_dir, DepthCrafterStage.components, UNET, UNetClass,
        device=device, dtype=dtype, noise="depth maps are meaningless",
    )  # fmt: skip
    pipeline: DepthCrafterPipeline = assemble(DepthCrafterPipeline, unet, parts, device, dtype, svd)
    return pipeline


class DepthCrafterStage(UNetStage):
    """DepthCrafter's pipeline behind the depth-stage interface (``stages.base.DepthStage``)."""

    name: ClassVar[str] = "depthcrafter"
    components: ClassVar[tuple[Component, ...]] = (*SVD_COMPONENTS, UNET)
    pipeline_type: ClassVar[type] = DepthCrafterPipeline
    per_frame_context: ClassVar[bool] = True  # DepthCrafter's CLIP context is per frame
    pipeline: DepthCrafterPipeline

    load_pipeline = staticmethod(load_pipeline)

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

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        """A full window at the processing size, in latents (an eighth); guidance runs its
        unconditional pass as a second call of batch 1, not as a batch of 2."""
        height, width = DepthCrafterStage.processing_size(*frame_size, config)
        return [WarmupCall(DepthCrafterStage.name, config.depth_window, 1, (height // 8, width // 8))]

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
