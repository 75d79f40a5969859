"""StereoCrafter video inpainting on diffusers components (stage 2).

Fills the disocclusions of the splatted right view, reproducing the model-facing computation of the
reference ``StableVideoDiffusionInpaintingPipeline`` and its driver (reference notes §2.4-2.6):

- per temporal chunk and spatial tile: CLIP embedding of the tile's FIRST frame only (SVD
  preprocessing), zeros as the negative;
- UNet input of 9 channels in this order: [noisy latents (4), warped-video latents (4; VAE posterior
  mode, unscaled, encoded 5 frames at a time), mask (1; binarised at 0.5, nearest-downsampled by 8
  which picks pixel (8i, 8j))]; zeros for the negative's video latents and mask;
- added time ids [6 (= fps 7 - 1), 127, 0.0]; 8 Euler/Karras v-prediction steps; guidance 1.01 with
  the negative and positive in one batch of 2;
- temporal chunks of 23 frames whose first 3 (more for the shifted last chunk) are the previous
  chunk's generated, 8-bit-quantised frames with their masks kept;
- spatial tiles (1, 2 or 4 per axis) overlapping by 128 px, blended linearly over 16 latent rows
  and columns, assembled, then decoded 2 frames at a time; outputs quantised to 8 bits. The pairs
  that hold only reused frames (which the reference decodes and drops) are not decoded: the kept
  frames are bit-identical (``decode_start``), 21 of 23 frames decoded instead of 23.

Deliberate differences (reference defects listed in the notes):
- No crop to multiples of 128: frames are padded (edge replication) up to the next multiple of 64
  with one tile (what the UNet needs: 1080 -> 1088, 6% more rows instead of the 128-multiple's
  1152, 11%) or of 128 with several tiles, and the result is cropped back, so the output keeps the
  source resolution (the reference drops up to 127 rows). At multiples of 128 nothing is padded
  and the arithmetic is the reference's.
- Tensors in, tensors out: no lossy mp4v grid video between the stages.
- Seeded: the noise of every chunk and tile comes from an explicit generator (default seed 42); the
  reference uses the unseeded global RNG. Clips of 1-3 frames get one chunk (the reference's loop
  produces nothing for clips no longer than the overlap).

Why one file of about 400 lines: as ``depth``, one pipeline read top to bottom (chunk and tile plans,
``check_inputs``, the numbered steps), reviewed side by side with the reference's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler
from diffusers.utils.torch_utils import randn_tensor

from stereocrafter.bounds import DEFAULT_SEED, TILE_NUMS, check_tile_num
from stereocrafter.config import REFERENCE
from stereocrafter.models.attention import set_feed_forward_chunking
from stereocrafter.models.svd import SVDPipeline

# StereoCrafter's inpainting call (reference notes §2), declared once in the run config.
DEFAULT_STEPS = REFERENCE.inpaint_steps  # 8
DEFAULT_GUIDANCE = REFERENCE.inpaint_guidance  # 1.01
DEFAULT_FRAMES_CHUNK = REFERENCE.frames_chunk  # 23
DEFAULT_OVERLAP = REFERENCE.inpaint_overlap  # 3
DEFAULT_TILE_NUM = REFERENCE.tile_num  # 1
TILE_OVERLAP_PX = 128
SIZE_MULTIPLE = 128  # with several tiles: the reference's multiple, which makes 2 and 4 tiles divide evenly
UNET_MULTIPLE = 64  # with one tile: what the UNet needs (latent /8, three 2x downsamplings)
VAE_DECODE_CHUNK = 2
# SVD conditioning: fps 7 passed as fps - 1, motion bucket 127, no noise augmentation.
ADDED_TIME_IDS = (6.0, 127.0, 0.0)
ALLOWED_TILE_NUMS = TILE_NUMS  # bounds.py: the schema and the CLI check the same


class InpaintSource(Protocol):
    """Warped frames and masks by index range: ``source[a:b]`` -> (warped (n, 3, H, W), mask (n, 1, H, W)),
    both float in [0, 1]. Ranges come in increasing order and overlap by at most a chunk."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass(frozen=True)
class Chunk:
    """One temporal chunk: frames [start, end) go in, the first ``reused`` of them are replaced by
    already generated frames, and the output keeps frames [start + reused, end)."""

    start: int
    end: int
    reused: int


def plan_chunks(
    num_frames: int, frames_chunk: int = DEFAULT_FRAMES_CHUNK, overlap: int = DEFAULT_OVERLAP
) -> list[Chunk]:
    """The reference's temporal chunking (notes §2.4), e.g. 50 frames -> [0,23) [20,43) [30,50),
    keeping 23 + 20 + 7 frames. Every frame is output exactly once."""
    if frames_chunk < 1 or not 0 <= overlap < frames_chunk:
        raise ValueError(
            f"need frames_chunk >= 1 and 0 <= overlap < frames_chunk, got {frames_chunk}, {overlap}"
        )
    chunks: list[Chunk] = []
    for i in range(0, num_frames, frames_chunk - overlap):
        if i + overlap >= num_frames and chunks:
            break  # (the reference breaks here even with no chunk yet: clips <= overlap got nothing)
        start, reused = i, (overlap if chunks else 0)
        if chunks and i + frames_chunk > num_frames:
            start = max(num_frames + overlap - frames_chunk, 0)
            reused = i - start + overlap
        chunks.append(Chunk(start, min(start + frames_chunk, num_frames), reused))
    return chunks


def tile_layout(size: int, tile_num: int, tile_overlap: int = TILE_OVERLAP_PX) -> tuple[int, int]:
    """(tile size, stride) along one axis of ``size`` pixels (reference §2.5)."""
    check_tile_num(tile_num)
    if tile_num == 1:
        return size, size
    tile = (size + tile_overlap * (tile_num - 1)) // tile_num
    if (size + tile_overlap * (tile_num - 1)) % tile_num or tile % 8:
        raise ValueError(f"{tile_num} tiles do not divide {size} px evenly into multiples of 8 px")
    return tile, tile - tile_overlap


def _blend(previous: torch.Tensor, tile: torch.Tensor, extent: int, dim: int) -> None:
    """In place: the first ``extent`` rows (dim=-2) or columns (dim=-1) of ``tile`` fade in from the
    last ``extent`` of ``previous``: weight k / extent for the tile, k = 0 .. extent - 1."""
    extent = min(extent, previous.shape[dim], tile.shape[dim])
    for k in range(extent):
        mix = k / extent
        ours = tile.narrow(dim, k, 1)
        theirs = previous.narrow(dim, previous.shape[dim] - extent + k, 1)
        ours.copy_(theirs * (1 - mix) + ours * mix)


def assemble_tiles(tiles: list[list[torch.Tensor]], stride: tuple[int, int], extent: int) -> torch.Tensor:
    """Blend (row-major, in place, neighbours already blended) and stitch latent tiles (..., h, w)."""
    n = len(tiles)
    for i in range(n):
        for j in range(n):
            if i > 0:
                _blend(tiles[i - 1][j], tiles[i][j], extent, dim=-2)
            if j > 0:
                _blend(tiles[i][j - 1], tiles[i][j], extent, dim=-1)
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            tile = tiles[i][j]
            if i < n - 1:
                tile = tile[..., : stride[0], :]
            if j < n - 1:
                tile = tile[..., : stride[1]]
            row.append(tile)
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


class StereoInpaintingPipeline(SVDPipeline):
    """Warped right view + occlusion mask -> inpainted right view (StereoCrafter stage 2).

    Components: ``unet`` (StereoCrafter's 9-channel UNet), ``vae``, ``image_encoder`` and
    ``scheduler`` from SVD-xt-1.1, plus the CLIP normalisation (``image_mean``/``image_std``).
    """

    def check_inputs(
        self,
        num_frames: int,
        height: int,
        width: int,
        num_inference_steps: int,
        guidance_scale: float,
        frames_chunk: int,
        overlap: int,
        tile_num: int,
    ) -> None:
        """Raise ``ValueError`` naming the first bad value."""
        if num_frames < 1:
            raise ValueError(f"frames must hold at least one frame, got {num_frames}")
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be >= 1, got {height}x{width}")
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {num_inference_steps}")
        if not (guidance_scale >= 0 and math.isfinite(guidance_scale)):
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance_scale}")
        if frames_chunk < 1 or not 0 <= overlap < frames_chunk:
            raise ValueError(
                f"need frames_chunk >= 1 and 0 <= overlap < frames_chunk, got {frames_chunk} and {overlap}"
            )
        padded_h, padded_w = padded_size(height, tile_num), padded_size(width, tile_num)
        tile_layout(padded_h, tile_num)
        tile_layout(padded_w, tile_num)
        if self.unet.config.in_channels != 9:
            raise ValueError(
                f"the inpainting UNet must take 9 input channels, it takes {self.unet.config.in_channels}"
            )

    @staticmethod
    def _check_frames(warped: torch.Tensor, mask: torch.Tensor, start: int) -> None:
        if warped.ndim != 4 or warped.shape[1] != 3:
            raise ValueError(f"warped frames {start}.. must be (n, 3, H, W), got {tuple(warped.shape)}")
        if mask.shape != (warped.shape[0], 1, *warped.shape[2:]):
            raise ValueError(f"mask {start}.. must be (n, 1, H, W) like the frames, got {tuple(mask.shape)}")
        for name, x in (("warped frames", warped), ("mask", mask)):
            low, high = float(x.min()), float(x.max())
            if low < 0.0 or high > 1.0:
                raise ValueError(f"{name} must lie in [0, 1], frames {start}.. span [{low:.4g}, {high:.4g}]")

    # -- one tile of one chunk ---------------------------------------------------------------

    @torch.no_grad()
    def denoise_tile(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        *,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The reference pipeline's call for one tile of one chunk, ``output_type="latent"``.

        Args:
            frames: (T, 3, h, w) float in [0, 1] (h, w multiples of 8), already on the device.
            mask: (T, 1, h, w) float in [0, 1], 1 = hole.
            latents: initial unit-variance noise (1, T, 4, h/8, w/8) or None to draw it.

        Returns:
            denoised latents (1, T, 4, h/8, w/8) in the pipeline dtype.
        """
        device, dtype = self._execution_device, self.unet.dtype
        num_frames, _, height, width = frames.shape
        factor = self.vae_scale_factor
        do_cfg = guidance_scale > 1.0  # the reference's scale of 1.01 always enables guidance

        # 1. CLIP embedding of the first frame; the negative is zeros.
        embeds = self.clip_embeddings(frames[:1].to(device) * 2.0 - 1.0)[:, None].to(dtype)  # (1, 1, D)
        # 2. Added time ids.
        time_ids = torch.tensor([ADDED_TIME_IDS], dtype=dtype, device=device)
        # 3. Warped-video latents: [-1, 1], VAE mode, unscaled (the reference encodes 5 frames
        #    per call; the encoder is per frame, so ``svd.VAE_ENCODE_BATCH`` gives the same latents).
        video = frames.to(device=device, dtype=torch.float32) * 2.0 - 1.0
        video_latents = self.vae_latents(video).to(dtype)[None]  # (1, T, 4, h, w)
        # 4. Mask: binarised at 0.5, nearest 1/8 (keeps pixel (8i, 8j)).
        binary = (mask.to(device=device, dtype=torch.float32) >= 0.5).float()
        mask_latents = F.interpolate(binary, scale_factor=1 / factor).to(dtype)[None]  # (1, T, 1, h, w)
        if do_cfg:
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
            time_ids = torch.cat([time_ids, time_ids])
            video_latents = torch.cat([torch.zeros_like(video_latents), video_latents])
            mask_latents = torch.cat([torch.zeros_like(mask_latents), mask_latents])

        # 5. Timesteps (a private scheduler: calls do not share state) and initial noise.
        scheduler = EulerDiscreteScheduler.from_config(self.scheduler.config)
        scheduler.set_timesteps(num_inference_steps, device=device)
        shape = (1, num_frames, self.unet.config.in_channels // 2, height // factor, width // factor)
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        elif tuple(latents.shape) != shape:
            raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        latents = latents.to(device=device, dtype=dtype) * scheduler.init_noise_sigma
        guidance = torch.full((1, num_frames, 1, 1, 1), guidance_scale, device=device, dtype=dtype)

        # 6. Denoising: 9 channels [noisy, warped-video latents, mask].
        set_feed_forward_chunking(self.unet, 2 if do_cfg else 1, latents)
        for t in scheduler.timesteps:
            model_in = torch.cat([latents] * 2) if do_cfg else latents
            model_in = scheduler.scale_model_input(model_in, t)
            model_in = torch.cat([model_in, video_latents, mask_latents], dim=2)
            noise_pred = self.unet(
                model_in, t, encoder_hidden_states=embeds, added_time_ids=time_ids, return_dict=False
            )[0]
            if do_cfg:
                uncond, cond = noise_pred.chunk(2)
                noise_pred = uncond + guidance * (cond - uncond)
            latents = scheduler.step(noise_pred, t, latents).prev_sample
        return latents

    def _decode(self, latents: torch.Tensor, keep_from: int = 0) -> torch.Tensor:
        """(1, T, 4, h, w) -> frames [``decode_start(keep_from)``, T) as (n, 3, H, W) in [0, 1], 2
        frames per decoder call, quantised to 8 bits (the reference goes through PIL images).

        The reference decodes the whole chunk and drops its first ``reused`` frames (already
        output by the previous chunk). The temporal decoder mixes the frames of one call, so its
        grouping (pairs from the chunk's first frame) is part of the output: only the pairs that
        hold no kept frame are skipped, and the kept frames are bit-identical."""
        flat = latents[0] / self.vae.config.scaling_factor
        frames = [
            self.decode_checked(flat[i : i + VAE_DECODE_CHUNK])
            for i in range(decode_start(keep_from), flat.shape[0], VAE_DECODE_CHUNK)
        ]
        video = (torch.cat(frames) / 2 + 0.5).clamp(0, 1)
        return (video * 255).round() / 255

    # -- chunks, tiles, padding --------------------------------------------------------------

    def _inpaint_chunk(
        self,
        frames: torch.Tensor,
        mask: torch.Tensor,
        tile_num: int,
        latents: torch.Tensor | None,
        keep_from: int,
        **denoise_kwargs: Any,
    ) -> torch.Tensor:
        """One temporal chunk at padded size: tiles -> blended latents -> decoded frames from
        ``decode_start(keep_from)`` on."""
        _, _, height, width = frames.shape
        tile_h, stride_h = tile_layout(height, tile_num)
        tile_w, stride_w = tile_layout(width, tile_num)
        if tile_num == 1:
            return self._decode(self.denoise_tile(frames, mask, latents=latents, **denoise_kwargs), keep_from)
        factor = self.vae_scale_factor
        tiles = []
        for i in range(tile_num):
            row = []
            for j in range(tile_num):
                ys, xs = (
                    slice(i * stride_h, i * stride_h + tile_h),
                    slice(j * stride_w, j * stride_w + tile_w),
                )
                row.append(self.denoise_tile(frames[..., ys, xs], mask[..., ys, xs], **denoise_kwargs))
            tiles.append(row)
        merged = assemble_tiles(tiles, (stride_h // factor, stride_w // factor), TILE_OVERLAP_PX // factor)
        return self._decode(merged, keep_from)

    @torch.no_grad()
    def __call__(self, warped: torch.Tensor, mask: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Inpaint a whole clip given as tensors: warped (T, 3, H, W), mask (T, 1, H, W), both in
        [0, 1]; returns the right view (T, 3, H, W) in [0, 1] on the CPU. Keywords: ``iter_inpaint``."""

        class Pairs:
            def __len__(self) -> int:
                return int(warped.shape[0])

            def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]:
                return warped[index], mask[index]

        return torch.cat([frames.cpu() for _, frames in self.iter_inpaint(Pairs(), **kwargs)])

    @torch.no_grad()
    def iter_inpaint(
        self,
        source: InpaintSource,
        *,
        num_inference_steps: int = DEFAULT_STEPS,
        guidance_scale: float = DEFAULT_GUIDANCE,
        frames_chunk: int = DEFAULT_FRAMES_CHUNK,
        overlap: int = DEFAULT_OVERLAP,
        tile_num: int = DEFAULT_TILE_NUM,
        generator: torch.Generator | None = None,
        latents: torch.Tensor | None = None,
        callback_on_chunk_end: Callable[[Chunk, int], None] | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(first_frame_index, right view (n, 3, H, W) in [0, 1] on the device)`` chunk by chunk.

        Args:
            source: warped frames and masks by index range (see ``InpaintSource``).
            num_inference_steps, guidance_scale, frames_chunk, overlap, tile_num: as the reference
                (8, 1.01, 23, 3, 1); ``tile_num`` is the number of tiles per axis (1, 2 or 4).
            generator: source of all noise; ``None`` means ``torch.Generator().manual_seed(42)``.
            latents: initial unit noise (1, T, 4, H'/8, W'/8) at the padded size, for a clip that is
                a single chunk and tile (as the reference's ``latents`` argument).
            callback_on_chunk_end: called with (chunk, number of chunks) after each chunk.
        """
        num_frames = len(source)
        first, _ = source[0:1]
        height, width = int(first.shape[-2]), int(first.shape[-1])
        self.check_inputs(
            num_frames, height, width, num_inference_steps, guidance_scale, frames_chunk, overlap, tile_num
        )
        chunks = plan_chunks(num_frames, frames_chunk, overlap)
        if latents is not None and (len(chunks) != 1 or tile_num != 1):
            raise ValueError("latents can only be given for a clip that is one chunk and one tile")
        if generator is None:
            generator = torch.Generator().manual_seed(DEFAULT_SEED)
        device = self._execution_device
        pad_h, pad_w = padded_size(height, tile_num) - height, padded_size(width, tile_num) - width
        previous: torch.Tensor | None = None  # last generated chunk, padded, on the device
        for chunk in chunks:
            warped, mask = source[chunk.start : chunk.end]
            self._check_frames(warped, mask, chunk.start)
            warped = _pad(warped.to(device=device, dtype=torch.float32), pad_h, pad_w)
            mask = _pad(mask.to(device=device, dtype=torch.float32), pad_h, pad_w)
            if previous is not None and chunk.reused:
                # Condition on what was already generated; the masks of those frames stay as they were.
                warped = warped.clone()
                warped[: chunk.reused] = previous[-chunk.reused :]
            generated = self._inpaint_chunk(  # frames [decode_start(chunk.reused), chunk length)
                warped,
                mask,
                tile_num,
                latents,
                chunk.reused,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                generator=generator,
            )
            previous = generated  # the next chunk's reused frames are among its last kept ones
            skip = chunk.reused - decode_start(chunk.reused)
            yield chunk.start + chunk.reused, generated[skip:, :, :height, :width]
            if callback_on_chunk_end is not None:
                callback_on_chunk_end(chunk, len(chunks))


def decode_start(keep_from: int) -> int:
    """The first frame a chunk decodes when it keeps frames ``keep_from`` onwards: the start of
    the ``VAE_DECODE_CHUNK``-frame group holding ``keep_from`` (3 reused -> 2: frame 2 is decoded
    with frame 3 and dropped)."""
    return keep_from // VAE_DECODE_CHUNK * VAE_DECODE_CHUNK


def padded_size(size: int, tile_num: int) -> int:
    """The size the stage works at: the next multiple of 64 with one tile (1080 -> 1088), of 128
    with several (1080 -> 1152, so that 2 and 4 overlapping tiles divide it evenly)."""
    multiple = UNET_MULTIPLE if tile_num == 1 else SIZE_MULTIPLE
    return -(-size // multiple) * multiple


def _pad(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Pad the bottom/right by repeating the last row/column (never a crop, unlike the reference)."""
    if not pad_h and not pad_w:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
