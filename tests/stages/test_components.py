"""``stages.components``: the published on-disk layout, missing files, the alternative layouts, the
download patterns, the tiny-weights marker and the UNet warm-up call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stereocrafter.errors import WeightsMissingError
from stereocrafter.stages.components import resolve_all
from stereocrafter.stages.depthcrafter import DepthCrafterStage
from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline
from stereocrafter.stages.stereocrafter import StereoCrafterStage
from stereocrafter.testing.weights import DEPTH_REPO, INPAINTING_REPO, SVD_REPO
from stereocrafter.weights.integrity import is_tiny
from stereocrafter.weights.manifest import TINY_WEIGHTS_MARKER
from tests.support.layout import DEPTH_FILES


@pytest.mark.parametrize("relative", DEPTH_FILES)
def test_each_missing_file_is_reported(weights_copy: Path, relative: str) -> None:
    (weights_copy / relative).unlink()
    with pytest.raises(WeightsMissingError) as caught:
        load_depth_pipeline(weights_copy)
    assert caught.value.status == 503
    assert len(caught.value.missing) == 1
    assert relative in caught.value.missing[0]
    assert relative in caught.value.message


def test_everything_missing_lists_every_component(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError) as caught:
        resolve_all(tmp_path, DepthCrafterStage.components)
    assert len(caught.value.missing) == len(DepthCrafterStage.components)


def test_accepts_the_alternative_layouts(weights_copy: Path) -> None:
    # DepthCrafter's UNet in an unet/ subfolder (its older layout), full-precision file names.
    depth = weights_copy / DEPTH_REPO
    (depth / "unet").mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (depth / name).rename(depth / "unet" / name)
    vae = weights_copy / SVD_REPO / "vae"
    (vae / "diffusion_pytorch_model.fp16.safetensors").rename(vae / "diffusion_pytorch_model.safetensors")
    encoder = weights_copy / SVD_REPO / "image_encoder"
    (encoder / "model.fp16.safetensors").rename(encoder / "model.safetensors")
    parts = resolve_all(weights_copy, DepthCrafterStage.components)
    assert parts["depth_unet"].subfolder == "unet" and parts["vae"].variant is None
    pipe = load_depth_pipeline(weights_copy)
    assert pipe(torch.rand(2, 3, 64, 64), num_inference_steps=1).shape == (2, 1, 64, 64)
    # StereoCrafter's UNet at the repo root instead of unet_diffusers/.
    stereo = weights_copy / INPAINTING_REPO
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (stereo / "unet_diffusers" / name).rename(stereo / name)
    assert resolve_all(weights_copy, StereoCrafterStage.components)["inpainting_unet"].subfolder == ""


def test_marker_labels_tiny_weights(weights_copy: Path) -> None:
    assert is_tiny(weights_copy)
    for marker in weights_copy.rglob(TINY_WEIGHTS_MARKER):
        marker.unlink()
    assert not is_tiny(weights_copy)


def test_a_warm_up_call_is_chunked_as_a_job_s_call_would_be(inpainting_pipeline, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On a card with little free memory the warm-up runs (and compiles) the chunked feed-forward,
    as the job's call of that shape will: never an unchunked call that would not fit."""
    from stereocrafter.models import attention
    from stereocrafter.stages.base import WarmupCall
    from stereocrafter.stages.components import warm_up_unet as _unet_call

    unet = inpainting_pipeline.unet
    seen: list[set] = []
    hook = unet.register_forward_pre_hook(
        lambda module, _args: seen.append(
            {m._chunk_size for m in module.modules() if hasattr(m, "_chunk_size")}
        )
    )
    try:
        for available in (1, 10**12):
            monkeypatch.setattr(attention, "available_bytes", lambda device, a=available: a)
            _unet_call(unet, WarmupCall("stereocrafter", 3, 1, (8, 8)), per_frame_context=False)
    finally:
        hook.remove()
        attention.chunk_feed_forward(unet, None)
        unet._stereocrafter_ff_chunking = None
    assert seen == [{1}, {None}]
