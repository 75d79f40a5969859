"""``stages.stereocrafter``: StereoCrafter's inpainting behind the stage interface: its loader refuses
a UNet without the 9 input channels, its plan, progress and warm-up calls."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from stereocrafter.stages.stereocrafter import load_pipeline as load_inpainting_pipeline
from stereocrafter.testing.weights import DEPTH_REPO, INPAINTING_REPO


def test_loader_rejects_an_eight_channel_unet(tiny_weights: Path, tmp_path: Path) -> None:
    """The error users hit with the wrong weights (reference issue #8), made explicit."""
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    target = weights / INPAINTING_REPO / "unet_diffusers"
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        shutil.copy(weights / DEPTH_REPO / name, target / name)
    with pytest.raises(ValueError, match=r"8 input channels.*takes 9"):
        load_inpainting_pipeline(weights)
