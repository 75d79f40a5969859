"""DepthCrafter video depth on diffusers components (stage 1 of StereoCrafter).

Reproduces the model-facing computation of DepthCrafter v1.0.1 as StereoCrafter calls it (reference
notes §1.4-1.6), so the published weights give the published result:

- per-frame CLIP image embeddings as cross-attention context (one token per frame, see
  ``DiffusersUNetSpatioTemporalConditionModelDepthCrafter``);
- the video, noise-augmented by 0.02 N(0, 1), encoded by the SVD VAE (mode of the posterior, NOT
  multiplied by the scaling factor) and concatenated to the noisy latents: 8 UNet input channels;
- added time ids [fps=7 (as is), motion bucket 127, noise_aug 0.02];
- 8 Euler steps on the Karras sigmas of the SVD scheduler (v-prediction), classifier-free guidance
  1.2 with a second UNet pass on zeroed video latents and zeroed embeddings;
- sliding windows of 70 frames overlapping by 25: the initial noise is drawn once for a window and
  rotated so that overlapping frames reuse the same noise; at the first step of every later window
  the overlap is replaced by the previous window's clean result re-noised to sigma_max with that
  noise; after denoising, the overlap is blended linearly (weight of the new window 0 -> 1);
- decode in chunks of 8 frames (the temporal decoder sees each chunk), (x / 2 + 0.5).clamp(0, 1),
  mean over RGB.

Deliberate differences (none changes what the model sees for a given frame and noise):
- Memory follows the window, not the clip: frames are read, CLIP- and VAE-encoded once each, window
  by window (the reference encodes the whole clip up front and keeps all latents on the GPU).
  Finished latents are decoded as soon as no later window can change them.
- Randomness comes from an explicit ``torch.Generator`` (default seed 42), never the global RNG:
  first the initial noise of a window, then the noise augmentation of each newly encoded chunk of
  frames. The reference draws from the global RNG (noise augmentation of the whole clip first).
- Module dtypes never change during a call: with fp16 and ``force_upcast`` the loader keeps the VAE
  encoder in fp32 and the decoder in fp16 (the reference casts the whole VAE back and forth).
- The scheduler is copied per call, so one pipeline can serve calls one after another without state
  leaking between them.

Why one file of about 500 lines: a diffusers pipeline is read top to bottom (the UNet's forward,
``check_inputs``, the numbered steps of ``iter_depth`` and the helpers they call), and its parity
with the reference is reviewed side by side with the reference's one file; splitting it would
scatter one procedure.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
from diffusers.models.unets.unet_spatio_temporal_condition import UNetSpatioTemporalConditionOutput
from diffusers.utils.torch_utils import randn_tensor

from stereocrafter.bounds import DEFAULT_SEED
from stereocrafter.config import REFERENCE
from stereocrafter.models.attention import set_feed_forward_chunking
from stereocrafter.models.svd import SVDPipeline

# StereoCrafter's call of DepthCrafter (reference notes §1.1), declared once in the run config.
DEFAULT_STEPS = REFERENCE.depth_steps  # 8
DEFAULT_GUIDANCE = REFERENCE.depth_guidance  # 1.2
DEFAULT_WINDOW = REFERENCE.depth_window  # 70
DEFAULT_OVERLAP = REFERENCE.depth_overlap  # 25
DEFAULT_MAX_RES = REFERENCE.depth_max_res  # 1024
DEFAULT_NOISE_AUG = REFERENCE.noise_aug_strength  # 0.02
DEFAULT_DECODE_CHUNK = REFERENCE.depth_decode_chunk  # 8
# Added time ids of DepthCrafter: fps 7 passed as is (not fps - 1), motion bucket 127.
DEPTHCRAFTER_FPS = 7
MOTION_BUCKET_ID = 127


class Window(NamedTuple):
    """One window of the depth stage: frames [start, end), of which the last ``new`` are first
    finished by it (the others are the overlap with the window before)."""

    start: int
    end: int
    new: int


def plan_windows(
    num_frames: int, window_size: int = DEFAULT_WINDOW, overlap: int = DEFAULT_OVERLAP
) -> list[Window]:
    """The windows ``iter_depth`` walks (reference §1.5), e.g. 250 frames, 110 / 25 -> [0,110)
    [85,195) [170,250). A clip of at most ``window_size`` frames is one window without overlap.
    Progress counting (``pipeline.StageProgress``) uses the same plan."""
    if num_frames <= window_size:
        return [Window(0, num_frames, num_frames)]
    windows: list[Window] = []
    start = 0
    while start < num_frames - overlap:
        end = min(start + window_size, num_frames)
        windows.append(Window(start, end, end - (start + overlap) if windows else end))
        start += window_size - overlap
    return windows


class FrameSource(Protocol):
    """Anything that gives frames by index range: a (T, 3, H, W) tensor, or a lazy reader.

    ``source[a:b]`` returns (b - a, 3, H, W) float in [0, 1]; ranges are asked in increasing order
    and overlap only by the window overlap.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> torch.Tensor: ...


@dataclass(frozen=True)
class WindowState:
    """What ``callback_on_window_end`` sees after each window (tensors are views: do not modify).

    ``window_latents`` (1, end - start, 4, h, w): this window's denoised latents, before blending.
    ``latents`` (1, n, 4, h, w): the blended latents not yet decoded, frames
    [latents_start, latents_start + n), ending at ``end``.
    """

    index: int
    start: int
    end: int
    num_frames: int
    window_latents: torch.Tensor
    latents: torch.Tensor
    latents_start: int


WindowCallback = Callable[[WindowState], None]


class DiffusersUNetSpatioTemporalConditionModelDepthCrafter(UNetSpatioTemporalConditionModel):
    """The SVD UNet with DepthCrafter's forward (the class name is the one in the published config).

    Weights, config and blocks are the stock ``UNetSpatioTemporalConditionModel``'s. The forward
    differs from the stock one in what the reference notes §1.4 list, and nowhere else:

    1. ``encoder_hidden_states`` is (B, T, D): one CLIP embedding per frame, used as the single
       cross-attention token of that frame (stock: (B, 1, D) repeated over the frames).
    2. The sinusoidal time embedding is cast to the dtype of ``conv_in.weight`` and so is
       ``sample`` before ``conv_in`` (stock: cast to ``sample.dtype``).
    """

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        encoder_hidden_states: torch.Tensor,
        added_time_ids: torch.Tensor,
        return_dict: bool = True,
    ) -> UNetSpatioTemporalConditionOutput | tuple[torch.Tensor]:
        """sample (B, T, C_in, h, w); encoder_hidden_states (B, T, D); added_time_ids (B, 3).
        Returns the model output (B, T, C_out, h, w)."""
        batch, frames = sample.shape[:2]
        if encoder_hidden_states.shape[:2] != (batch, frames):
            raise ValueError(
                "encoder_hidden_states must hold one embedding per frame, (B, T, D) = "
                f"({batch}, {frames}, D); got {tuple(encoder_hidden_states.shape)}"
            )
        weight_dtype = self.conv_in.weight.dtype
        up_factor = 2**self.num_upsamplers
        forward_upsample_size = any(size % up_factor != 0 for size in sample.shape[-2:])

        # 1. Time and added-time embeddings, one per batch item, repeated over the frames.
        timesteps = torch.as_tensor(timestep, device=sample.device)
        if timesteps.ndim == 0:
            timesteps = timesteps[None]
        timesteps = timesteps.expand(batch)
        emb = self.time_embedding(self.time_proj(timesteps).to(dtype=weight_dtype))
        time_embeds = self.add_time_proj(added_time_ids.flatten()).reshape((batch, -1))
        emb = emb + self.add_embedding(time_embeds.to(emb.dtype))
        emb = emb.repeat_interleave(frames, dim=0)  # (B*T, C)

        # 2. Frames into the batch; each frame attends to its own CLIP token: (B*T, 1, D).
        hidden = self.conv_in(sample.flatten(0, 1).to(weight_dtype))
        context = encoder_hidden_states.reshape(batch * frames, 1, -1)
        image_only_indicator = torch.zeros(batch, frames, dtype=hidden.dtype, device=hidden.device)

        # 3. Down, mid, up: the stock block sequence.
        skips: tuple[torch.Tensor, ...] = (hidden,)
        for block in self.down_blocks:
            kwargs: dict[str, Any] = {"temb": emb, "image_only_indicator": image_only_indicator}
            if getattr(block, "has_cross_attention", False):
                kwargs["encoder_hidden_states"] = context
            hidden, residuals = block(hidden_states=hidden, **kwargs)
            skips += residuals
        hidden = self.mid_block(
            hidden_states=hidden,
            temb=emb,
            encoder_hidden_states=context,
            image_only_indicator=image_only_indicator,
        )
        for i, block in enumerate(self.up_blocks):
            residuals = skips[-len(block.resnets) :]
            skips = skips[: -len(block.resnets)]
            upsample_size = None
            if i < len(self.up_blocks) - 1 and forward_upsample_size:
                upsample_size = skips[-1].shape[2:]
            kwargs = {
                "temb": emb,
                "image_only_indicator": image_only_indicator,
                "upsample_size": upsample_size,
            }
            if getattr(block, "has_cross_attention", False):
                kwargs["encoder_hidden_states"] = context
            hidden = block(hidden_states=hidden, res_hidden_states_tuple=residuals, **kwargs)

        # 4. Out, back to (B, T, C_out, h, w).
        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        hidden = hidden.reshape(batch, frames, *hidden.shape[1:])
        if not return_dict:
            return (hidden,)
        return UNetSpatioTemporalConditionOutput(sample=hidden)


class DepthCrafterPipeline(SVDPipeline):
    """Video -> relative depth (1 = near), DepthCrafter as StereoCrafter runs it.

    Components: ``unet`` (DepthCrafter), ``vae`` (SVD temporal-decoder VAE), ``image_encoder`` (SVD's
    CLIP ViT-H/14), ``scheduler`` (SVD's Euler/Karras config), plus the CLIP normalisation
    (``image_mean``/``image_std`` from SVD's feature_extractor config).
    """

    # -- validation ------------------------------------------------------------------------

    def check_inputs(
        self,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        guidance_scale: float,
        window_size: int,
        overlap: int,
        noise_aug_strength: float,
        decode_chunk_size: int,
        latents: torch.Tensor | None,
    ) -> None:
        """Raise ``ValueError`` naming the first bad value."""
        if num_frames < 1:
            raise ValueError(f"frames must hold at least one frame, got {num_frames}")
        factor = self.vae_scale_factor
        if height % factor or width % factor or height < factor or width < factor:
            raise ValueError(f"height and width must be positive multiples of {factor}, got {height}x{width}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if not (guidance_scale >= 0 and math.isfinite(guidance_scale)):
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}")
        if window_size < 1:
            raise ValueError(f"window_size must be >= 1, got {window_size}")
        if not 0 <= overlap < window_size:
            raise ValueError(f"overlap must be in [0, window_size={window_size}), got {overlap}")
        if not (noise_aug_strength >= 0 and math.isfinite(noise_aug_strength)):
            raise ValueError(f"noise_aug_strength must be a finite number >= 0, got {noise_aug_strength}")
        if decode_chunk_size < 1:
            raise ValueError(f"decode_chunk_size must be >= 1, got {decode_chunk_size}")
        if latents is not None:
            window = min(window_size, num_frames)
            expected = (1, window, self.unet.config.in_channels // 2, height // factor, width // factor)
            if tuple(latents.shape) != expected:
                raise ValueError(f"latents must have shape {expected}, got {tuple(latents.shape)}")

    @staticmethod
    def _check_frames(chunk: torch.Tensor, start: int, height: int, width: int) -> None:
        if chunk.ndim != 4 or chunk.shape[1:] != (3, height, width):
            raise ValueError(f"frames {start}.. must be (n, 3, {height}, {width}), got {tuple(chunk.shape)}")
        if not chunk.is_floating_point():
            raise ValueError(f"frames must be floating point in [0, 1], got dtype {chunk.dtype}")
        low, high = float(chunk.min()), float(chunk.max())
        if low < 0.0 or high > 1.0:
            raise ValueError(f"frames must lie in [0, 1], frames {start}.. span [{low:.4g}, {high:.4g}]")

    # -- encoders --------------------------------------------------------------------------

    def _encode(
        self,
        frames: torch.Tensor,
        chunk_size: int,
        noise_aug_strength: float,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (n, 3, H, W) in [0, 1] -> CLIP embeddings (n, D) and video latents (n, 4, h, w),
        both in the pipeline dtype, encoded ``chunk_size`` frames at a time."""
        device, dtype = self._execution_device, self.unet.dtype
        embeds, latents = [], []
        for start in range(0, frames.shape[0], chunk_size):
            video = frames[start : start + chunk_size].to(device=device, dtype=dtype) * 2.0 - 1.0
            embeds.append(self.clip_embeddings(video).to(dtype))
            noise = randn_tensor(video.shape, generator=generator, device=device, dtype=dtype)
            latents.append(self.vae_latents(video + noise_aug_strength * noise).to(dtype))
        return torch.cat(embeds), torch.cat(latents)

    def _decode(self, latents: torch.Tensor, chunk_size: int) -> torch.Tensor:
        """latents (n, 4, h, w) -> depth (n, 1, H, W) float32 on the CPU, ``chunk_size`` frames per
        temporal-decoder call; (x / 2 + 0.5).clamp(0, 1), mean over RGB."""
        out = []
        for start in range(0, latents.shape[0], chunk_size):
            chunk = latents[start : start + chunk_size] / self.vae.config.scaling_factor
            frames = self.decode_checked(chunk)
            rgb = (frames / 2 + 0.5).clamp(0, 1)
            out.append(rgb.mean(dim=1, keepdim=True).cpu())
        return torch.cat(out)

    # -- the pipeline ----------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, frames: FrameSource, **kwargs: Any) -> torch.Tensor:
        """Depth of every frame, (T, 1, H, W) float32 in [0, 1] on the CPU, at the processing
        resolution of ``frames`` (not normalised; see ``resize_depth``/``normalize_depth``).
        Keyword arguments as ``iter_depth``."""
        return torch.cat([chunk for _, chunk in self.iter_depth(frames, **kwargs)])

    @torch.no_grad()
    def iter_depth(
        self,
        frames: FrameSource,
        *,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        window_size: int = DEFAULT_WINDOW,
        overlap: int = DEFAULT_OVERLAP,
        noise_aug_strength: float = DEFAULT_NOISE_AUG,
        decode_chunk_size: int = DEFAULT_DECODE_CHUNK,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        callback_on_window_end: WindowCallback | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_frame_index, depth (n, 1, H, W))`` in frame order as soon as frames are final.

        Args:
            frames: (T, 3, H, W) float in [0, 1], H and W multiples of 8 (``processing_size`` gives
                multiples of 64): a tensor or any ``FrameSource``. Only one window is read at a time.
            num_inference_steps, guidance_scale, window_size, overlap, noise_aug_strength,
                decode_chunk_size: as the reference (defaults: 8, 1.2, 70, 25, 0.02, 8).
            generator: source of all randomness; ``None`` means ``torch.Generator().manual_seed(42)``.
            latents: initial unit-variance noise (1, min(window_size, T), 4, H/8, W/8), as the
                reference's ``latents`` argument (scaled by ``init_noise_sigma`` here, rotated
                across windows). Drawn from ``generator`` when ``None``.
            callback_on_window_end: called with a ``WindowState`` after each window is denoised
                and blended (progress reporting, inspection).
        """
        num_frames = len(frames)
        first = frames[0:1]
        height, width = int(first.shape[-2]), int(first.shape[-1])
        # 1. Short clips are one window without overlap (reference §1.5 step 1).
        if num_frames <= window_size:
            window_size, overlap = num_frames, 0
        self.check_inputs(
            num_frames,
            height,
            width,
            num_inference_steps,
            guidance_scale,
            window_size,
            overlap,
            noise_aug_strength,
            decode_chunk_size,
            latents,
        )
        stride = window_size - overlap
        device, dtype = self._execution_device, self.unet.dtype
        if generator is None:
            generator = torch.Generator().manual_seed(DEFAULT_SEED)
        do_cfg = guidance_scale > 1.0

        # 2. A private scheduler with the shared config: timesteps and step index are per call.
        scheduler = EulerDiscreteScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=device)

        # 3. Added time ids [fps, motion bucket, noise augmentation] (fps 7 as is, unlike SVD).
        time_ids = torch.tensor(
            [[DEPTHCRAFTER_FPS, MOTION_BUCKET_ID, noise_aug_strength]], dtype=dtype, device=device
        )

        # 4. Initial noise for one window, scaled by init_noise_sigma.
        shape = (1, window_size, self.unet.config.in_channels // 2, height // 8, width // 8)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        noise_init = latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma

        # Encoded frames of the current window, and latents not yet decoded (``tail`` covers frames
        # [tail_start, tail_start + tail.shape[1])).
        cache_start, cache_embeds, cache_latents = 0, None, None
        tail_start, tail = 0, None
        emitted = 0

        windows = plan_windows(num_frames, window_size, overlap)
        for window, (idx_start, idx_end, _) in enumerate(windows):
            frames_here = idx_end - idx_start

            # 5. Encode the frames this window adds; reuse the overlap from the last window.
            if cache_embeds is None or cache_latents is None:
                new_from = idx_start
                kept_embeds = kept_latents = None
            else:
                skip = idx_start - cache_start  # frames of the last window not in this one
                kept_embeds, kept_latents = cache_embeds[skip:], cache_latents[skip:]
                new_from = cache_start + cache_embeds.shape[0]
            chunk = frames[new_from:idx_end]
            self._check_frames(chunk, new_from, height, width)
            new_embeds, new_latents = self._encode(chunk, decode_chunk_size, noise_aug_strength, generator)
            if kept_embeds is not None and kept_latents is not None:
                new_embeds = torch.cat([kept_embeds, new_embeds])
                new_latents = torch.cat([kept_latents, new_latents])
            cache_start, cache_embeds, cache_latents = idx_start, new_embeds, new_latents
            embeds = new_embeds[None]  # (1, Tw, D)
            video_latents = new_latents[None]  # (1, Tw, 4, h, w)

            # 6. This window's noise; rotate so the next window's overlap reuses this window's tail.
            window_latents = noise_init[:, :frames_here].clone()
            noise_init = torch.cat([noise_init[:, window_size - overlap :], noise_init[:, :stride]], dim=1)

            # 7. Denoise.
            scheduler.set_timesteps(num_inference_steps, device=device)
            set_feed_forward_chunking(self.unet, 1, window_latents)  # each pass is a call of batch 1
            for i, t in enumerate(scheduler.timesteps):
                if window > 0 and i == 0 and overlap > 0 and tail is not None:
                    # Previous clean result of the overlap, re-noised to sigma_max with the same noise.
                    window_latents[:, :overlap] = (
                        tail[:, tail.shape[1] - overlap :]
                        + window_latents[:, :overlap] / scheduler.init_noise_sigma * scheduler.sigmas[0]
                    )
                scaled = scheduler.scale_model_input(window_latents, t)
                noise_pred = self.unet(
                    torch.cat([scaled, video_latents], dim=2),
                    t,
                    encoder_hidden_states=embeds,
                    added_time_ids=time_ids,
                    return_dict=False,
                )[0]
                if do_cfg:
                    noise_uncond = self.unet(
                        torch.cat([scaled, torch.zeros_like(video_latents)], dim=2),
                        t,
                        encoder_hidden_states=torch.zeros_like(embeds),
                        added_time_ids=time_ids,
                        return_dict=False,
                    )[0]
                    noise_pred = noise_uncond + guidance_scale * (noise_pred - noise_uncond)
                window_latents = scheduler.step(noise_pred, t, window_latents).prev_sample

            # 8. Stitch: linear blend over the overlap (new window's weight 0 -> 1), append the rest.
            if tail is None:
                tail, tail_start = window_latents, idx_start
            else:
                weight = torch.linspace(0, 1, overlap, device=device, dtype=dtype).view(1, overlap, 1, 1, 1)
                kept = tail.shape[1] - overlap
                blended = window_latents[:, :overlap] * weight + tail[:, kept:] * (1 - weight)
                tail = torch.cat([tail[:, :kept], blended, window_latents[:, overlap:]], dim=1)
            if callback_on_window_end is not None:
                callback_on_window_end(
                    WindowState(window, idx_start, idx_end, num_frames, window_latents, tail, tail_start)
                )

            # 9. Decode what no later window can change, in chunks aligned to frame 0 (the
            #    temporal decoder mixes the frames of a chunk, so alignment matters).
            last = window == len(windows) - 1
            final_end = num_frames if last else idx_end - overlap
            while emitted < final_end:
                n = min(decode_chunk_size, final_end - emitted)
                if n < decode_chunk_size and not last:
                    break
                offset = emitted - tail_start
                yield emitted, self._decode(tail[0, offset : offset + n], decode_chunk_size)
                emitted += n
            # Drop decoded latents, but keep the overlap for the next window.
            drop = min(emitted - tail_start, tail.shape[1] - overlap)
            if drop > 0 and not last:
                tail, tail_start = tail[:, drop:], tail_start + drop


def processing_size(height: int, width: int, max_res: int = DEFAULT_MAX_RES) -> tuple[int, int]:
    """Depth resolution for a source of ``height`` x ``width`` (reference §1.2).

    Each side rounded to the nearest multiple of 64; if the larger one then exceeds ``max_res``,
    both are scaled by max_res / max(H, W) first and rounded again (e.g. 1920x1080 -> 1024x576,
    640x360 -> 640x384). Never below 64.
    """
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    if max_res < 64:
        raise ValueError(f"max_res must be >= 64, got {max_res}")
    h, w = round(height / 64) * 64, round(width / 64) * 64
    if max(h, w) > max_res:
        scale = max_res / max(height, width)
        h, w = round(height * scale / 64) * 64, round(width * scale / 64) * 64
    return max(h, 64), max(w, 64)


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H0, W0) in [0, 1] -> (T, 3, h, w) at the processing size.

    Antialiased bilinear resampling in torch. (The reference has decord/FFmpeg's scaler resize
    while decoding; its exact filter is not reproducible here and is not part of the models.)
    """
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames, size=size, mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)
