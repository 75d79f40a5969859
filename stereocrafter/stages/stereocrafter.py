"""StereoCrafter's inpainting on Stable Video Diffusion (``models.inpainting``), the reference's
inpainting stage: a video diffusion UNet conditioned on the splatted right view and its occlusion
mask, run chunk by chunk (23 frames, 3 reused), steps x tiles UNet calls per chunk, then a VAE
decode. Research use only (``catalog.MODELS["stereocrafter"]``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import ClassVar

import torch

from stereocrafter.catalog import MODELS
from stereocrafter.config import StereoConfig
from stereocrafter.models import inpainting
from stereocrafter.models.inpainting import Chunk, StereoInpaintingPipeline
from stereocrafter.stages.base import HoleSource, WarmupCall
from stereocrafter.stages.components import (
    SVD_COMPONENTS,
    Component,
    UNetStage,
    assemble,
    load_unet,
)
from stereocrafter.stereo.merge import working_size

UNET = Component(
    "inpainting_unet",
    MODELS["stereocrafter"].repo,
    ("unet_diffusers", ""),
    "config.json",
    ("diffusion_pytorch_model.safetensors",),
)


def load_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    svd: dict[str, object] | None = None,
) -> StereoInpaintingPipeline:
    """The StereoCrafter inpainting pipeline from ``weights_dir`` (fp16 on CUDA, fp32 on CPU by
    default; ``svd``: already loaded SVD parts). Checks that the UNet takes the 9 input channels the
    pipeline builds."""
    from diffusers import UNetSpatioTemporalConditionModel

    unet, parts, device, dtype = load_unet(
        weights_dir, StereoCrafterStage.components, UNET, UNetSpatioTemporalConditionModel,
        device=device, dtype=dtype, noise="inpainting output is noise",
    )  # fmt: skip
    folder = parts[UNET.name].folder
    if unet.config.in_channels != 9:
        raise ValueError(
            f"{folder} holds a UNet with {unet.config.in_channels} input channels; StereoCrafter's "
            "inpainting UNet takes 9 (noise, warped-video latents, mask): wrong weights?"
        )
    pipeline: StereoInpaintingPipeline = assemble(StereoInpaintingPipeline, unet, parts, device, dtype, svd)
    return pipeline


class StereoCrafterStage(UNetStage):
    """StereoCrafter's pipeline behind the inpainting-stage interface
    (``stages.base.InpaintingStage``)."""

    name: ClassVar[str] = "stereocrafter"
    components: ClassVar[tuple[Component, ...]] = (*SVD_COMPONENTS, UNET)
    pipeline_type: ClassVar[type] = StereoInpaintingPipeline
    per_frame_context: ClassVar[bool] = False  # one CLIP image per chunk
    pipeline: StereoInpaintingPipeline

    load_pipeline = staticmethod(load_pipeline)

    @staticmethod
    def plan(num_frames: int, config: StereoConfig) -> list[Chunk]:
        return inpainting.plan_chunks(num_frames, config.frames_chunk, config.inpaint_overlap)

    @staticmethod
    def increments(chunks: list[Chunk], config: StereoConfig) -> list[float]:
        """Frames finished per UNet call: each chunk's kept frames over steps x tiles (the
        guidance pair is one batched call)."""
        calls = config.inpaint_steps * config.tile_num**2
        return [(c.end - c.start - c.reused) / calls for c in chunks for _ in range(calls)]

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        """A full chunk at the working size, padded as the pipeline pads it, in latents (an
        eighth), with 2 in the batch under classifier-free guidance."""
        work_h, work_w = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        latent = (
            inpainting.padded_size(work_h, config.tile_num) // 8,
            inpainting.padded_size(work_w, config.tile_num) // 8,
        )
        batch = 2 if config.inpaint_guidance > 1.0 else 1
        return [WarmupCall(StereoCrafterStage.name, config.frames_chunk, batch, latent)]

    def iter_inpaint(
        self, source: HoleSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        return self.pipeline.iter_inpaint(
            source,
            num_inference_steps=config.inpaint_steps,
            guidance_scale=config.inpaint_guidance,
            frames_chunk=config.frames_chunk,
            overlap=config.inpaint_overlap,
            tile_num=config.tile_num,
            generator=generator,
        )
