"""Shared fixtures: tiny random weights in the published layout, and pipelines loaded from them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

from stereocrafter.testing.weights import make_tiny_weights

# CI replays the same examples on every run (a landing must not depend on luck); a developer's
# run draws new ones each time, which is where fuzzing finds things.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_weights(tmp_path_factory.mktemp("weights"))


@pytest.fixture
def weights_copy(tiny_weights: Path, tmp_path: Path) -> Path:
    """A copy of the tiny weights that a test may break."""
    import shutil

    target = tmp_path / "weights"
    shutil.copytree(tiny_weights, target)
    return target


@pytest.fixture(scope="session")
def depth_pipeline(tiny_weights: Path):
    from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline

    return load_depth_pipeline(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def inpainting_pipeline(tiny_weights: Path):
    from stereocrafter.stages.stereocrafter import load_pipeline as load_inpainting_pipeline

    return load_inpainting_pipeline(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def vda_pipeline(tiny_weights: Path):
    from stereocrafter.stages.vda import load_pipeline as load_vda_pipeline

    return load_vda_pipeline(tiny_weights, device="cpu")


@pytest.fixture(scope="session")
def moto_server():
    """moto's real HTTP server on 127.0.0.1 (S3, Secrets Manager, SageMaker runtime, ...): the local
    stack's (``testing.stack.MotoServer``)."""
    from stereocrafter.testing.stack import MotoServer

    with MotoServer() as moto:
        yield moto.url


@pytest.fixture
def aws(moto_server: str):
    """boto3 clients against the moto server, state reset for each test."""
    import boto3
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)

    def client(name: str, **kwargs: object):
        return boto3.client(name, endpoint_url=moto_server, region_name="us-east-1", **kwargs)

    return client


@pytest.fixture(scope="session")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """26 frames of a moving scene, 96x64 at 29.97 fps, with AAC audio."""
    from fractions import Fraction

    from stereocrafter.testing.media import make_video, scene_frames

    path = tmp_path_factory.mktemp("media") / "left.mp4"
    return make_video(path, scene_frames(26, 96, 64), fps=Fraction(30000, 1001), audio_codec="aac")


@pytest.fixture(scope="session")
def stereo(depth_pipeline, inpainting_pipeline):  # type: ignore[no-untyped-def]
    """Both tiny stages with 2 steps each (a file may define its own ``stereo``)."""
    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.run import StereoPipeline

    return StereoPipeline(depth_pipeline, inpainting_pipeline, StereoConfig(depth_steps=2, inpaint_steps=2))
