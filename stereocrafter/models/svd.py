"""What both diffusion stages share: the SVD-xt-1.1 components, their CLIP image conditioning and
the checked VAE decode."""

from __future__ import annotations

import logging

import torch
from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from diffusers.pipelines.pipeline_utils import DiffusionPipeline
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)
from transformers import CLIPVisionModelWithProjection

CLIP_SIZE = (224, 224)
# Frames per VAE-encoder call. The encoder is a 2D network (no temporal layers): every frame's
# latent is the same whatever the batch, so this is a memory setting, not part of the model. The
# reference encodes 8 (depth) or 5 (inpainting) frames per call; in fp32 (force_upcast) 8 frames
# of 1024x576 hold 12.1 GB of activations, 2 hold 3.0 GB (bench/flops.py).
VAE_ENCODE_BATCH = 2

logger = logging.getLogger(__name__)


class SVDPipeline(DiffusionPipeline):
    """Components: a spatio-temporal ``unet``, SVD's ``vae`` (temporal decoder), ``image_encoder``
    (CLIP ViT-H/14) and ``scheduler`` (Euler, Karras sigmas, v-prediction), plus the CLIP
    normalisation (``image_mean``/``image_std`` of SVD's feature_extractor config)."""

    model_cpu_offload_seq = "image_encoder->unet->vae"

    def __init__(
        self,
        unet: UNetSpatioTemporalConditionModel,
        vae: AutoencoderKLTemporalDecoder,
        image_encoder: CLIPVisionModelWithProjection,
        scheduler: EulerDiscreteScheduler,
        image_mean: tuple[float, float, float],
        image_std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, image_encoder=image_encoder, scheduler=scheduler)
        self.register_to_config(image_mean=tuple(image_mean), image_std=tuple(image_std))
        self.image_mean = tuple(image_mean)
        self.image_std = tuple(image_std)
        self.vae_scale_factor = 2 ** (len(vae.config.block_out_channels) - 1)
        self.set_progress_bar_config(disable=True)

    def clip_embeddings(self, video: torch.Tensor) -> torch.Tensor:
        """video (n, 3, H, W) in [-1, 1] -> (n, D) CLIP ``image_embeds``, as SVD prepares them:
        float32 antialiased resize to 224x224, back to [0, 1], CLIP mean/std normalisation (the
        processor is configured to do nothing else), image encoder."""
        pixels = _resize_with_antialiasing(video.float(), CLIP_SIZE)
        pixels = (pixels + 1.0) / 2.0
        mean = torch.tensor(self.image_mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.image_std, device=pixels.device).view(1, 3, 1, 1)
        encoder_dtype = next(self.image_encoder.parameters()).dtype
        embeds: torch.Tensor = self.image_encoder(((pixels - mean) / std).to(encoder_dtype)).image_embeds
        return embeds

    def vae_latents(self, video: torch.Tensor) -> torch.Tensor:
        """video (n, 3, H, W) in [-1, 1] -> (n, 4, H/8, W/8): the VAE posterior's mode, unscaled
        (as both reference pipelines), in the encoder's dtype, ``VAE_ENCODE_BATCH`` frames per call."""
        encoder_dtype = next(self.vae.encoder.parameters()).dtype
        video = video.to(encoder_dtype)
        return torch.cat(
            [
                self.vae.encode(video[i : i + VAE_ENCODE_BATCH]).latent_dist.mode()
                for i in range(0, video.shape[0], VAE_ENCODE_BATCH)
            ]
        )

    def decode_checked(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled-back latents (n, 4, h, w) -> the VAE's frames (n, 3, H, W) as float32, checked
        for non-finite values: the fp16 decoder can overflow at 1080p, and inf or NaN would be
        encoded as garbage (clamping turns inf into white). Such a chunk is decoded again with the
        decoder in float32 (on the CPU, where it already is float32, simply again); still not
        finite is a ``NonFiniteOutputError``."""
        from stereocrafter.errors import NonFiniteOutputError

        decoder = self.vae.decoder
        dtype = next(decoder.parameters()).dtype
        frames: torch.Tensor = self.vae.decode(latents.to(dtype), num_frames=latents.shape[0]).sample.float()
        if bool(torch.isfinite(frames).all()):
            return frames
        logger.warning("the VAE decoded non-finite values in %s; decoding the chunk again in float32", dtype)
        try:
            decoder.to(torch.float32)
            frames = self.vae.decode(latents.float(), num_frames=latents.shape[0]).sample.float()
        finally:
            decoder.to(dtype)
        if not bool(torch.isfinite(frames).all()):
            raise NonFiniteOutputError(
                "the VAE decoded non-finite values (inf/NaN), in float32 too; nothing was written"
            )
        return frames
