"""Shared fixtures: tiny random weights in the published layout, and pipelines loaded from them."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.testing import make_tiny_weights


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def depth_pipeline(tiny_weights: Path):
    from stereocrafter.loading import load_depth_pipeline

    return load_depth_pipeline(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def inpainting_pipeline(tiny_weights: Path):
    from stereocrafter.loading import load_inpainting_pipeline

    return load_inpainting_pipeline(tiny_weights, device="cpu")
