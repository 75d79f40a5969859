"""The half-precision tier on the CPU: every preset's tiny pipeline in float16 and in bfloat16, as a
GPU runs it (UNets, CLIP and the VAE decoder in that dtype, the VAE encoder in float32 where the
code keeps it there, VDA-S's float32 weights under autocast to that dtype), giving finite depth
and right views of the right shape; and the float32 retry of a decode that overflows, back to
half precision afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.presets import PRESET_NAMES

pytestmark = pytest.mark.slow  # turbo's VDA-S at its 518-px processing size under CPU autocast


class Finite:
    """Records every chunk's depth and right view (``StereoPipeline.run``'s observer)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
        self.finite = True

    def on_start(self, **_: object) -> None:
        pass

    def on_frames(self, start: int, left: torch.Tensor, depth: torch.Tensor, holes: torch.Tensor,
                  right: torch.Tensor) -> None:  # fmt: skip
        self.shapes.append((tuple(depth.shape), tuple(right.shape)))
        self.finite &= bool(torch.isfinite(depth).all() and torch.isfinite(right).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["float16", "bfloat16"])
def test_every_preset_runs_in_half_precision(tiny_weights: Path, dtype: torch.dtype) -> None:
    pipeline = load_stereo_pipeline(tiny_weights, device="cpu", dtype=dtype)
    depthcrafter = pipeline.depth_stages["depthcrafter"].pipeline
    vda = pipeline.depth_stages["vda-small"].pipeline
    vda.autocast_dtype = dtype  # what float16 autocast on CUDA does, on the CPU
    assert depthcrafter.unet.dtype == pipeline.inpainting.unet.dtype == dtype
    assert pipeline.inpainting.image_encoder.dtype == dtype
    assert next(pipeline.inpainting.vae.decoder.parameters()).dtype == dtype
    encoder = next(pipeline.inpainting.vae.encoder.parameters()).dtype  # fp16 + force_upcast: fp32
    assert encoder == (torch.float32 if dtype == torch.float16 else dtype)
    assert next(vda.model.parameters()).dtype == torch.float32
    linear = next(m for m in vda.model.modules() if isinstance(m, torch.nn.Linear))
    vda_dtypes: list[torch.dtype] = []
    linear.register_forward_hook(lambda _m, _i, out: vda_dtypes.append(out.dtype))
    frames = (np.random.default_rng(0).random((5, 64, 96, 3)) * 255).astype(np.uint8)
    for preset in PRESET_NAMES:
        seen = Finite()
        out: list[np.ndarray] = []
        pipeline.run(lambda: iter([frames]), out.append, num_frames=5, width=96, height=64, mode="sbs",
                     config=StereoConfig.from_preset(preset, depth_steps=1, inpaint_steps=1),
                     hooks=RunHooks(observer=seen))  # fmt: skip
        assert np.concatenate(out).shape == (5, 64, 192, 3), preset
        assert seen.finite, f"{preset} in {dtype}: non-finite depth or right view"
        assert sum(right[0] for _, right in seen.shapes) == 5 and all(
            right[1:] == (3, 64, 96) and depth[-2:] == (64, 96) for depth, right in seen.shapes
        ), (preset, seen.shapes)
    assert vda_dtypes and set(vda_dtypes) == {dtype}  # turbo's VDA-S computed in half precision


def test_an_overflowing_half_precision_decode_is_retried_in_float32(tiny_weights: Path) -> None:
    """float16 overflow in the VAE decoder (the case the check exists for, here injected): the chunk
    is decoded again in float32, the depth is finite, and the decoder is back in float16 after."""
    from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline

    pipe = load_depth_pipeline(tiny_weights, device="cpu", dtype=torch.float16)
    dtypes: list[torch.dtype] = []

    def overflow_first(module, inputs, output):  # type: ignore[no-untyped-def]
        dtypes.append(output.dtype)
        return torch.full_like(output, float("inf")) if len(dtypes) == 1 else None

    handle = pipe.vae.decoder.register_forward_hook(overflow_first)
    try:
        frames = torch.rand(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
        depth = pipe(frames, num_inference_steps=1, window_size=8, overlap=2, decode_chunk_size=4)
    finally:
        handle.remove()
    assert dtypes == [torch.float16, torch.float32]  # the retry ran in float32
    assert torch.isfinite(depth).all() and depth.shape == (4, 1, 64, 64)
    assert next(pipe.vae.decoder.parameters()).dtype == torch.float16  # restored
