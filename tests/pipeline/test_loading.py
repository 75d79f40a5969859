"""``pipeline.loading``: the stages of the presets served, loaded from the published layout (the
tiny-weights kit writes it), sharing the SVD parts; every missing file reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.errors import WeightsMissingError
from stereocrafter.testing.weights import DEPTH_REPO, INPAINTING_REPO, SVD_REPO

DEPTH_FILES = [
    f"{SVD_REPO}/vae/config.json",
    f"{SVD_REPO}/vae/diffusion_pytorch_model.fp16.safetensors",
    f"{SVD_REPO}/image_encoder/config.json",
    f"{SVD_REPO}/image_encoder/model.fp16.safetensors",
    f"{SVD_REPO}/feature_extractor/preprocessor_config.json",
    f"{SVD_REPO}/scheduler/scheduler_config.json",
    f"{DEPTH_REPO}/config.json",
    f"{DEPTH_REPO}/diffusion_pytorch_model.safetensors",
]


def test_stereo_pipeline_shares_the_svd_components(tiny_weights: Path) -> None:
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    stereo = load_stereo_pipeline(tiny_weights, device="cpu")
    assert stereo.depth.vae is stereo.inpainting.vae
    assert stereo.depth.image_encoder is stereo.inpainting.image_encoder
    assert stereo.inpainting.unet.config.in_channels == 9 and stereo.depth.unet.config.in_channels == 8


def test_stereo_pipeline_reports_both_stages_missing(weights_copy: Path) -> None:
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    (weights_copy / DEPTH_REPO / "config.json").unlink()
    (weights_copy / INPAINTING_REPO / "unet_diffusers" / "config.json").unlink()
    with pytest.raises(WeightsMissingError) as caught:
        load_stereo_pipeline(weights_copy)
    assert len(caught.value.missing) == 2
