"""``stages.depthcrafter``: DepthCrafter loads through the real code path, fp16 keeps the VAE
encoder in fp32."""

from __future__ import annotations

from pathlib import Path

import torch

from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline


def test_loads_through_the_real_code_path(tiny_weights: Path) -> None:
    pipe = load_depth_pipeline(tiny_weights, device="cpu")
    assert pipe.unet.dtype == torch.float32  # fp16 files, upcast on the CPU
    assert type(pipe.unet).__name__ == "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"
    assert pipe.vae_scale_factor == 8
    assert pipe.image_mean == (0.48145466, 0.4578275, 0.40821073)
    processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert processors == {"BatchSplitAttnProcessor"}  # PyTorch SDPA, batches within CUDA's grid limit
    chunks = {m._chunk_size for m in pipe.unet.modules() if hasattr(m, "_chunk_size")}
    assert chunks == {None}  # whole feed-forward until a call's memory needs chunks (models.attention)


def test_fp16_keeps_the_vae_encoder_in_fp32(tiny_weights: Path) -> None:
    pipe = load_depth_pipeline(tiny_weights, device="cpu", dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16
    assert next(pipe.vae.encoder.parameters()).dtype == torch.float32
    assert next(pipe.vae.decoder.parameters()).dtype == torch.float16
