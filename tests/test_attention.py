"""Attention batches cut to CUDA's grid limit give the unsplit result."""

from __future__ import annotations

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
