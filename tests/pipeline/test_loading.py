"""``pipeline.loading``: the stages of the presets served, loaded from the published layout (the
tiny-weights kit writes it), sharing the SVD parts; every missing file reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.errors import WeightsMissingError
from stereocrafter.testing.weights import DEPTH_REPO, INPAINTING_REPO


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
        load_stereo_pipeline(weights_copy, presets=("reference", "fast", "turbo"))
    assert len(caught.value.missing) == 2
    # served beside them, the licence-clean presets still load: only the diffusion presets are down
    pipeline = load_stereo_pipeline(weights_copy)
    assert pipeline.ready_presets == ["instant", "clean"]
    assert {p: (u.model, u.state) for p, u in pipeline.unavailable.items()} == {
        "reference": ("depthcrafter", "missing"), "fast": ("depthcrafter", "missing"),
        "turbo": ("stereocrafter", "missing"),
    }  # fmt: skip
