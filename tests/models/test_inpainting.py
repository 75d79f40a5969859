"""The StereoCrafter inpainting stage on tiny random weights: inputs checked on the real UNet."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from stereocrafter.models.inpainting import (
    StereoInpaintingPipeline,
    assemble_tiles,
    decode_start,
    plan_chunks,
    tile_layout,
)
from stereocrafter.models.svd import VAE_ENCODE_BATCH


def inputs(t: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    warped = torch.rand((t, 3, h, w), generator=gen)
    mask = torch.rand((t, 1, h, w), generator=gen)  # fractional: the pipeline binarises at 0.5
    return warped, mask


# --- planning ------------------------------------------------------------------------------


@pytest.mark.parametrize("num_frames", [1, 2, 3, 22, 23, 24, 25, 43, 44, 50, 97])
def test_chunks_cover_every_frame_exactly_once(num_frames: int) -> None:
    chunks = plan_chunks(num_frames)
    kept = [i for c in chunks for i in range(c.start + c.reused, c.end)]
    assert kept == list(range(num_frames))
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.reused > 0 and chunk.start + chunk.reused == previous.end  # conditioned on its tail
        assert chunk.end - chunk.start <= 23


def test_chunks_match_the_reference_example() -> None:
    chunks = plan_chunks(50)
    assert [(c.start, c.end, c.reused) for c in chunks] == [(0, 23, 0), (20, 43, 3), (30, 50, 13)]
    assert [c.end - c.start - c.reused for c in chunks] == [23, 20, 7]
    assert [(c.start, c.end) for c in plan_chunks(22)] == [(0, 22)]


def test_tile_layout() -> None:
    assert tile_layout(1024, 1) == (1024, 1024)
    assert tile_layout(1024, 2) == (576, 448)
    assert tile_layout(1152, 4) == (384, 256)
    with pytest.raises(ValueError, match="tile_num must be one of"):
        tile_layout(1024, 3)
    with pytest.raises(ValueError, match="do not divide"):
        tile_layout(1000, 4)


def test_assemble_tiles_blends_linearly_and_keeps_the_size() -> None:
    # 2x2 tiles of 6x6 latents with 2-row/2-column overlap (stride 4): full size 10x10.
    tiles = [[torch.full((1, 1, 6, 6), float(10 * i + j)) for j in range(2)] for i in range(2)]
    out = assemble_tiles(tiles, (4, 4), extent=2)
    assert out.shape == (1, 1, 10, 10)
    # Left edge of tile (0, 1): column 4 takes the left tile's column 4 (weight 1 - 0), column 5
    # is half-way: 0.5 * 0 + 0.5 * 1.
    assert out[0, 0, 0, 4] == 0.0 and out[0, 0, 0, 5] == pytest.approx(0.5)
    assert out[0, 0, 0, 6] == 1.0
    # Top edge of tile (1, 0) blends with the (already blended) tile above.
    assert out[0, 0, 4, 0] == 0.0 and out[0, 0, 5, 0] == pytest.approx(5.0) and out[0, 0, 6, 0] == 10.0


# --- what the UNet sees ----------------------------------------------------------------------


def test_unet_gets_nine_channels_in_the_documented_order(
    inpainting_pipeline: StereoInpaintingPipeline,
) -> None:
    pipe = inpainting_pipeline
    warped, mask = inputs(5, 64, 64)
    noise = torch.randn((1, 5, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    seen: list[dict[str, torch.Tensor]] = []

    def hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        seen.append({"x": args[0].clone(), "ctx": kwargs["encoder_hidden_states"].clone(),
                     "ids": kwargs["added_time_ids"].clone()})  # fmt: skip

    handle = pipe.unet.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        pipe.denoise_tile(warped, mask, num_inference_steps=2, latents=noise)
    finally:
        handle.remove()
    assert len(seen) == 2  # one batched (negative, positive) call per step
    x = seen[0]["x"]
    assert x.shape == (2, 5, 9, 8, 8)
    # [0:4] the noisy latents, scaled for the first step (sigma 700).
    scale0 = 1 / math.sqrt(700.0**2 + 1)
    expected_noisy = noise * math.sqrt(700.0**2 + 1) * scale0
    torch.testing.assert_close(x[1, :, :4], expected_noisy[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x[0, :, :4], x[1, :, :4], rtol=0, atol=0)
    # [4:8] the warped frames' VAE posterior mode, unscaled.
    with torch.no_grad():
        video_latents = pipe.vae.encode(warped * 2 - 1).latent_dist.mode()
    torch.testing.assert_close(x[1, :, 4:8], video_latents, rtol=1e-4, atol=1e-4)
    # [8] the mask, binarised at 0.5 and sampled at pixel (8i, 8j).
    expected_mask = (mask[:, :, ::8, ::8] >= 0.5).float()
    torch.testing.assert_close(x[1, :, 8:9], expected_mask, rtol=0, atol=0)
    torch.testing.assert_close(F.interpolate((mask >= 0.5).float(), scale_factor=1 / 8), expected_mask)
    # The negative half: zero video latents, zero mask, zero embedding.
    assert torch.count_nonzero(x[0, :, 4:]) == 0
    ctx = seen[0]["ctx"]
    assert ctx.shape == (2, 1, pipe.unet.config.cross_attention_dim)
    assert torch.count_nonzero(ctx[0]) == 0 and torch.count_nonzero(ctx[1]) > 0
    torch.testing.assert_close(seen[0]["ids"], torch.tensor([[6.0, 127.0, 0.0]] * 2))


def test_later_chunks_are_conditioned_on_generated_frames(
    inpainting_pipeline: StereoInpaintingPipeline,
) -> None:
    """Chunk [20, 43) encodes the previous chunk's last 3 generated frames in place of the warped ones."""
    pipe = inpainting_pipeline
    warped, mask = inputs(30, 32, 32, seed=1)
    encoded: list[torch.Tensor] = []
    handle = pipe.vae.encoder.register_forward_pre_hook(lambda m, a: encoded.append(a[0].clone()))
    outputs = []
    try:

        class Pairs:
            def __len__(self) -> int:
                return 30

            def __getitem__(self, s: slice) -> tuple[torch.Tensor, torch.Tensor]:
                return warped[s], mask[s]

        chunks = []
        for start, frames in pipe.iter_inpaint(
            Pairs(), num_inference_steps=1, callback_on_chunk_end=lambda c, n: chunks.append(c)
        ):
            outputs.append((start, frames))
    finally:
        handle.remove()
    assert [(c.start, c.end, c.reused) for c in chunks] == [(0, 23, 0), (10, 30, 13)]
    first_chunk_out = outputs[0][1]
    # Encoder inputs of chunk 2 (after chunk 1's 23 frames; padded to 64 px): its first 13 frames.
    assert max(len(x) for x in encoded) == VAE_ENCODE_BATCH and sum(len(x) for x in encoded) == 23 + 20
    second = torch.cat(encoded)[23 : 23 + 13, :, :32, :32]
    torch.testing.assert_close(second, first_chunk_out[10:23] * 2 - 1, rtol=0, atol=1e-6)
    # and the generated frames are 8-bit levels
    torch.testing.assert_close(first_chunk_out * 255, (first_chunk_out * 255).round(), rtol=0, atol=1e-4)


# --- outputs -------------------------------------------------------------------------------


def test_keeps_odd_resolutions_and_is_seeded(inpainting_pipeline: StereoInpaintingPipeline) -> None:
    warped, mask = inputs(3, 45, 75)
    out = inpainting_pipeline(warped, mask, num_inference_steps=2)
    assert out.shape == (3, 3, 45, 75) and out.min() >= 0 and out.max() <= 1
    again = inpainting_pipeline(
        warped, mask, num_inference_steps=2, generator=torch.Generator().manual_seed(42)
    )
    assert torch.equal(out, again)
    other = inpainting_pipeline(
        warped, mask, num_inference_steps=2, generator=torch.Generator().manual_seed(1)
    )
    assert (out - other).abs().max() > 1e-3


@pytest.mark.parametrize("num_frames", [50])  # chunks reusing 3 (an odd count) and then 13 frames
def test_decoding_only_the_kept_frames_is_bit_identical(
    inpainting_pipeline: StereoInpaintingPipeline, num_frames: int
) -> None:
    """The reference decodes every frame of a chunk and drops the reused ones. Walked here from
    the same pieces with the whole chunk decoded: ``iter_inpaint`` gives the same bits and calls
    the decoder only for the 2-frame groups that hold a kept frame."""
    pipe = inpainting_pipeline
    warped, mask = inputs(num_frames, 64, 64, seed=3)
    chunks = plan_chunks(num_frames)
    generator = torch.Generator().manual_seed(7)
    expected, previous = [], None
    for chunk in chunks:
        frames = warped[chunk.start : chunk.end].clone()
        if previous is not None:
            frames[: chunk.reused] = previous[-chunk.reused :]
        latents = pipe.denoise_tile(frames, mask[chunk.start : chunk.end], num_inference_steps=1,
                                    generator=generator)  # fmt: skip
        previous = pipe._decode(latents)  # every frame, as the reference
        expected.append(previous[chunk.reused :])
    calls: list[int] = []
    handle = pipe.vae.decoder.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        got = pipe(warped, mask, num_inference_steps=1, generator=torch.Generator().manual_seed(7))
    finally:
        handle.remove()
    assert torch.equal(got, torch.cat(expected))
    groups = sum(-(-(c.end - c.start - decode_start(c.reused)) // 2) for c in chunks)
    assert len(calls) == groups < sum(-(-(c.end - c.start) // 2) for c in chunks)


@pytest.mark.parametrize("tile_num", [2, 4])
def test_tiling_gives_the_same_shape_as_one_tile(
    inpainting_pipeline: StereoInpaintingPipeline, tile_num: int
) -> None:
    warped, mask = inputs(2, 130, 140)  # padded to 256 x 256
    one = inpainting_pipeline(warped, mask, num_inference_steps=1)
    tiled = inpainting_pipeline(warped, mask, num_inference_steps=1, tile_num=tile_num)
    assert one.shape == tiled.shape == (2, 3, 130, 140)


def test_rejects_bad_input(inpainting_pipeline: StereoInpaintingPipeline) -> None:
    warped, mask = inputs(2, 64, 64)
    with pytest.raises(ValueError, match="tile_num must be one of"):
        inpainting_pipeline(warped, mask, tile_num=3)
    with pytest.raises(ValueError, match=r"mask .* must be"):
        inpainting_pipeline(warped, mask[:, :, :-1])
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        inpainting_pipeline(warped * 3, mask)
    with pytest.raises(ValueError, match="latents must have shape"):
        inpainting_pipeline(warped, mask, latents=torch.zeros(1, 2, 4, 16, 16))  # 64 px is 8 latents
