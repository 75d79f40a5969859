"""A literal, whole-clip walk through DepthCrafter's __call__ as the reference notes §1.5 describe it.

Written for the tests only: it holds the whole clip's embeddings and latents at once, encodes
everything up front and decodes at the end, exactly in the reference's order. The streaming
pipeline in ``stereocrafter.models.depth`` must produce the same numbers from the same components and
the same initial noise (noise augmentation off, since the two draw it in different orders).
"""

from __future__ import annotations

import torch
from diffusers import EulerDiscreteScheduler
from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
    _resize_with_antialiasing,
)


@torch.no_grad()
def reference_depth(
    pipe,
    frames: torch.Tensor,
    latents: torch.Tensor,
    *,
    num_inference_steps: int = 8,
    guidance_scale: float = 1.2,
    window_size: int = 70,
    overlap: int = 25,
    decode_chunk_size: int = 8,
) -> torch.Tensor:
    num_frames = frames.shape[0]
    # step 1
    if num_frames <= window_size:
        window_size, overlap = num_frames, 0
    stride = window_size - overlap
    # step 2
    video = frames * 2 - 1
    # step 3: CLIP embeddings of every frame, chunks of decode_chunk_size
    embeds = []
    mean = torch.tensor(pipe.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(pipe.image_std).view(1, 3, 1, 1)
    for i in range(0, num_frames, decode_chunk_size):
        x = _resize_with_antialiasing(video[i : i + decode_chunk_size].float(), (224, 224))
        x = ((x + 1) / 2 - mean) / std
        embeds.append(pipe.image_encoder(x).image_embeds)
    embeds_all = torch.cat(embeds)[None]
    # steps 4-5: (noise augmentation 0) VAE mode, unscaled, chunks of decode_chunk_size
    video_latents = torch.cat(
        [
            pipe.vae.encode(video[i : i + decode_chunk_size]).latent_dist.mode()
            for i in range(0, num_frames, decode_chunk_size)
        ]
    )[None]
    # step 6
    added_time_ids = torch.tensor([[7.0, 127.0, 0.0]])
    # step 7
    scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    scheduler.set_timesteps(num_inference_steps)
    # step 8
    latents_init = latents * scheduler.init_noise_sigma
    # step 9
    latents_all = None
    idx_start = 0
    while idx_start < num_frames - overlap:
        idx_end = min(idx_start + window_size, num_frames)
        scheduler.set_timesteps(num_inference_steps)
        window_latents = latents_init[:, : idx_end - idx_start].clone()
        latents_init = torch.cat([latents_init[:, -overlap:] if overlap else latents_init[:, :0],
                                  latents_init[:, :stride]], dim=1)  # fmt: skip
        cond = video_latents[:, idx_start:idx_end]
        context = embeds_all[:, idx_start:idx_end]
        for i, t in enumerate(scheduler.timesteps):
            # (overlap 0 with several windows makes the reference's [-0:] slices take everything
            # and fail; the sensible reading, and ours, is "no overlap to re-noise or blend")
            if latents_all is not None and i == 0 and overlap > 0:
                window_latents[:, :overlap] = (
                    latents_all[:, -overlap:]
                    + window_latents[:, :overlap] / scheduler.init_noise_sigma * scheduler.sigmas[0]
                )
            x = scheduler.scale_model_input(window_latents, t)
            eps = pipe.unet(torch.cat([x, cond], 2), t, context, added_time_ids, return_dict=False)[0]
            if guidance_scale > 1:
                eps_u = pipe.unet(
                    torch.cat([x, torch.zeros_like(cond)], 2),
                    t,
                    torch.zeros_like(context),
                    added_time_ids,
                    return_dict=False,
                )[0]
                eps = eps_u + guidance_scale * (eps - eps_u)
            window_latents = scheduler.step(eps, t, window_latents).prev_sample
        if latents_all is None:
            latents_all = window_latents.clone()
        elif overlap == 0:
            latents_all = torch.cat([latents_all, window_latents], 1)
        else:
            w = torch.linspace(0, 1, overlap).view(1, -1, 1, 1, 1)
            latents_all[:, -overlap:] = window_latents[:, :overlap] * w + latents_all[:, -overlap:] * (1 - w)
            latents_all = torch.cat([latents_all, window_latents[:, overlap:]], 1)
        idx_start += stride
    # steps 10-11, §1.6: decode chunks, postprocess, mean of RGB
    assert latents_all is not None
    flat = latents_all[0] / pipe.vae.config.scaling_factor
    decoded = torch.cat(
        [
            pipe.vae.decode(
                flat[i : i + decode_chunk_size], num_frames=flat[i : i + decode_chunk_size].shape[0]
            ).sample
            for i in range(0, num_frames, decode_chunk_size)
        ]
    ).float()
    return (decoded / 2 + 0.5).clamp(0, 1).mean(dim=1, keepdim=True)
