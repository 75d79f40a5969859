"""``testing.weights``: the tiny random weights are written in the published on-disk layout."""

from __future__ import annotations

import json
from pathlib import Path

from stereocrafter.testing.weights import DEPTH_REPO, INPAINTING_REPO, SVD_REPO
from stereocrafter.weights.integrity import is_tiny
from tests.support.layout import DEPTH_FILES


def test_tiny_layout_is_the_published_layout(tiny_weights: Path) -> None:
    for relative in DEPTH_FILES:
        assert (tiny_weights / relative).is_file(), relative
    assert (
        tiny_weights / INPAINTING_REPO / "unet_diffusers" / "diffusion_pytorch_model.safetensors"
    ).is_file()
    depth_config = json.loads((tiny_weights / DEPTH_REPO / "config.json").read_text())
    assert depth_config["_class_name"] == "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"
    assert depth_config["in_channels"] == 8 and depth_config["out_channels"] == 4
    inpaint_config = json.loads(
        (tiny_weights / INPAINTING_REPO / "unet_diffusers" / "config.json").read_text()
    )
    assert inpaint_config["_class_name"] == "UNetSpatioTemporalConditionModel"
    assert inpaint_config["in_channels"] == 9
    vae_config = json.loads((tiny_weights / SVD_REPO / "vae" / "config.json").read_text())
    assert vae_config["_class_name"] == "AutoencoderKLTemporalDecoder"
    assert len(vae_config["block_out_channels"]) == 4 and vae_config["force_upcast"] is True
    clip_config = json.loads((tiny_weights / SVD_REPO / "image_encoder" / "config.json").read_text())
    assert (
        clip_config["architectures"] == ["CLIPVisionModelWithProjection"] and clip_config["image_size"] == 224
    )
    assert is_tiny(tiny_weights)
