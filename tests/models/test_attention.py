"""Attention batches cut to CUDA's grid limit give the unsplit result."""

from __future__ import annotations

import os

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from stereocrafter.models.attention import CUDA_GRID_LIMIT, BatchSplitAttnProcessor, use_batch_split_attention


def test_a_1080p_shaped_temporal_batch_is_split_and_equal() -> None:
    """2 (CFG) x 144 x 240 latent pixels = 69,120 sequences of 23 frames, as the reference's
    1080p inpainting with one tile and 128-px padding: over the 65,535 limit, so two slices."""
    torch.manual_seed(0)
    attn = Attention(query_dim=8, heads=2, dim_head=4, cross_attention_dim=8).eval()
    batch = 2 * 144 * 240
    assert batch > CUDA_GRID_LIMIT
    hidden = torch.randn(batch, 23, 8)
    context = torch.randn(batch, 1, 8)
    calls: list[int] = []
    splitter = BatchSplitAttnProcessor()
    inner_call = splitter.inner.__call__

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(args[1].shape[0])  # type: ignore[union-attr]
        return inner_call(*args, **kwargs)  # type: ignore[arg-type]

    splitter.inner = counting  # type: ignore[assignment]
    with torch.no_grad():
        for ctx in (None, context):  # self-attention and cross-attention
            calls.clear()
            attn.set_processor(AttnProcessor2_0())
            whole = attn(hidden, encoder_hidden_states=ctx)
            attn.set_processor(splitter)
            split = attn(hidden, encoder_hidden_states=ctx)
            assert calls == [CUDA_GRID_LIMIT, batch - CUDA_GRID_LIMIT]
            torch.testing.assert_close(split, whole, rtol=0, atol=1e-6)


def test_a_whole_unet_with_tiny_slices_matches(inpainting_pipeline) -> None:
    unet = inpainting_pipeline.unet
    gen = torch.Generator().manual_seed(3)
    sample = torch.randn(2, 5, 9, 8, 8, generator=gen)
    context = torch.randn(2, 1, unet.config.cross_attention_dim, generator=gen)
    ids = torch.tensor([[6.0, 127.0, 0.0]] * 2)
    with torch.no_grad():
        before = unet(sample, 10.0, encoder_hidden_states=context, added_time_ids=ids, return_dict=False)[0]
        use_batch_split_attention(unet, max_batch=7)  # 2 x 8 x 8 = 128 sequences -> 19 slices
        try:
            after = unet(sample, 10.0, encoder_hidden_states=context, added_time_ids=ids, return_dict=False)[
                0
            ]
        finally:
            use_batch_split_attention(unet)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def _chunk_sizes(unet) -> set:  # type: ignore[no-untyped-def]
    return {m._chunk_size for m in unet.modules() if hasattr(m, "_chunk_size")}


def test_feed_forward_is_chunked_only_when_the_call_would_not_fit() -> None:
    """From the shape and the memory left: fast's 110-frame depth window at 1024x576 (17.5 GB
    unchunked, bench/ff_chunking.py) runs whole on an 80 GB card with 60 GB free and in chunks
    with 12 GB free; turbo's inpainting chunk (0.7 GB) never needs it."""
    from stereocrafter.models.attention import needs_chunking

    gb = 10**9
    depth_window, turbo_chunk = 110 * 72 * 128, 23 * 32 * 56
    assert not needs_chunking(depth_window, 2, 60 * gb) and needs_chunking(depth_window, 2, 12 * gb)
    assert not needs_chunking(turbo_chunk, 2, 2 * gb) and needs_chunking(turbo_chunk, 2, gb // 2)
    assert needs_chunking(depth_window, 4, 30 * gb) and not needs_chunking(depth_window, 2, 30 * gb)  # fp32


def test_the_memory_the_chunking_choice_reads_does_not_follow_the_moment() -> None:
    """The choice reads the machine's RAM (a CUDA card: its total less this process's live tensors),
    not what is free now, which other processes move: the same call is chunked or not every run."""
    from stereocrafter.models.attention import available_bytes

    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    before = available_bytes(torch.device("cpu"))
    held = bytearray(256 << 20)  # a quarter GiB taken by someone else
    assert available_bytes(torch.device("cpu")) == before == ram
    del held


def test_the_pipelines_switch_chunking_per_call(inpainting_pipeline, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A stage run with little memory free turns chunking on for its UNet calls, with plenty off;
    the result is the same either way, to the rounding of the matrix products' summation order."""
    from stereocrafter.models import attention

    unet = inpainting_pipeline.unet
    seen: list[set] = []
    hook = unet.register_forward_pre_hook(lambda module, _args: seen.append(_chunk_sizes(module)))
    frames = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mask = (torch.rand(4, 1, 64, 64, generator=torch.Generator().manual_seed(1)) > 0.7).float()

    def run(available: int) -> torch.Tensor:
        monkeypatch.setattr(attention, "available_bytes", lambda device: available)
        generator = torch.Generator().manual_seed(2)
        return inpainting_pipeline(frames, mask, num_inference_steps=2, generator=generator)

    try:
        tight, roomy = run(1), run(10**12)
    finally:
        hook.remove()
        attention.chunk_feed_forward(unet, None)
        unet._stereocrafter_ff_chunking = None
    assert seen[:2] == [{1}, {1}] and seen[2:] == [{None}, {None}]
    # the same products, batched differently: the matrix kernels may sum in another order, which
    # moves a rare output value by one 8-bit step (seen: 0.012 % of them)
    assert (tight - roomy).abs().max() <= 1 / 255 + 1e-6 and (tight != roomy).float().mean() < 1e-3
