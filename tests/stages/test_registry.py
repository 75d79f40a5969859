"""The depth model as data and the turbo preset: the catalog, the depth stages behind one interface,
models loaded and downloaded only for the presets served, the stored depth's model, the settings,
``doctor`` and the CLI (the service: ``tests/service/test_turbo.py``)."""

from __future__ import annotations

import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from stereocrafter.catalog import MODELS
from stereocrafter.config import StereoConfig
from stereocrafter.errors import (
    DepthMismatchError,
    PresetNotServedError,
    PresetUnavailableError,
    WeightsMissingError,
)
from stereocrafter.media.depthstore import DepthShape, read_depth, write_depth
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.serving.weights import download_plan, download_weights
from stereocrafter.stages.depthcrafter import DepthCrafterStage
from stereocrafter.stages.registry import components_of, processing_size
from stereocrafter.stages.vda import VdaStage
from stereocrafter.testing.hub import HubServer
from stereocrafter.weights.integrity import read_lock


def test_the_depth_stage_is_chosen_by_the_config_and_sized_by_its_model() -> None:
    dc, vda = StereoConfig(), StereoConfig.from_preset("turbo")
    assert processing_size(1080, 1920, dc) == (576, 1024)  # DepthCrafter: multiples of 64, max 1024
    assert processing_size(1080, 1920, vda) == (518, 924)  # VDA: 518, multiples of 14
    assert processing_size(48, 64, StereoConfig.from_preset("turbo", depth_input_size=28)) == (28, 42)
    # progress: one VDA call per window of 32 finishes that window's new frames; DepthCrafter's
    # windows are spread over their UNet calls
    assert VdaStage.increments(100, vda) == [24.0, 22.0, 22.0, 22.0, 10.0]
    assert sum(DepthCrafterStage.increments(100, dc)) == pytest.approx(100)
    assert len(DepthCrafterStage.increments(100, dc)) == 2 * 16  # 2 windows x 8 steps x 2 passes
    frames = torch.rand(2, 3, 48, 64)
    assert VdaStage.resize(frames, (28, 42)).shape == (2, 3, 28, 42)
    assert VdaStage.resize(frames, (48, 64)) is frames


def test_a_model_that_is_not_loaded_is_a_400_before_any_work(vda_pipeline, inpainting_pipeline) -> None:
    pipeline = StereoPipeline(vda_pipeline, inpainting_pipeline, StereoConfig.from_preset("turbo"))
    assert list(pipeline.depth_stages) == ["vda-small"] and pipeline.depth is None
    opened: list[int] = []

    def open_frames():  # type: ignore[no-untyped-def]
        opened.append(1)
        return iter([np.zeros((4, 48, 64, 3), np.uint8)])

    with pytest.raises(PresetNotServedError, match="depthcrafter is not loaded here") as caught:
        pipeline.run(open_frames, lambda _: None, num_frames=4, width=64, height=48, config=StereoConfig())
    assert caught.value.status == 400 and opened == []


def test_a_turbo_only_load_needs_and_loads_no_depthcrafter_file(tiny_weights: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    shutil.rmtree(weights / "tencent")  # no DepthCrafter at all
    pipeline = load_stereo_pipeline(weights, presets=("turbo",))
    assert list(pipeline.depth_stages) == ["vda-small"] and pipeline.depth is None
    with pytest.raises(WeightsMissingError, match="tencent/DepthCrafter"):
        load_stereo_pipeline(weights, presets=("fast",))
    both = load_stereo_pipeline(weights, presets=("turbo", "fast"))  # fast alone is down
    assert both.ready_presets == ["turbo"] and both.unavailable["fast"].model == "depthcrafter"
    with pytest.raises(PresetUnavailableError, match=r"fast cannot run .* depthcrafter .* is missing"):
        both.check_inputs(StereoConfig.from_preset("fast"), 4, "sbs")
    assert [c.name for c in components_of(["turbo"])] == [
        "vae", "image_encoder", "feature_extractor", "scheduler", "inpainting_unet", "vda",
    ]  # fmt: skip


def test_a_turbo_only_download_fetches_no_depthcrafter_file(tiny_weights: Path, tmp_path: Path) -> None:
    assert "tencent/DepthCrafter" not in download_plan(["turbo"])
    assert set(download_plan()) == {m.repo for m in MODELS.values() if m.repo}  # the fill has no file
    with HubServer(tiny_weights, "hf_t") as hub:
        failed = download_weights(tmp_path / "w", "hf_t", endpoint=hub.url, presets=["turbo"],
                                  manifest=read_lock(tiny_weights))  # fmt: skip
        assert failed == {} and not any("DepthCrafter" in request for request in hub.requests)
        assert "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth" in hub.downloads
    assert {p.relative_to(tmp_path / "w").parts[0] for p in (tmp_path / "w").iterdir()} == {
        "stabilityai", "TencentARC", "depth-anything"}  # fmt: skip


def test_a_stored_depth_names_its_model_and_is_refused_by_the_other(tmp_path: Path) -> None:
    depth = torch.rand(3, 1, 28, 42) * 5

    write_depth(
        tmp_path / "d.mkv", depth, fps=Fraction(12), source_width=64, source_height=48, model="vda-small"
    )
    stored = read_depth(tmp_path / "d.mkv", DepthShape(3, 64, 48, 42, 28, "vda-small"))
    assert stored.meta["depth_model"] == "vda-small"
    with pytest.raises(
        DepthMismatchError, match="made by 'vda-small'; this preset's depth model is 'depthcrafter'"
    ):
        read_depth(tmp_path / "d.mkv", DepthShape(3, 64, 48, 42, 28))
    # a depth stored before the tag had a model was DepthCrafter's: taken by DepthCrafter presets only
    write_depth(tmp_path / "old.mkv", depth, fps=Fraction(12), source_width=64, source_height=48)
    assert (
        read_depth(tmp_path / "old.mkv", DepthShape(3, 64, 48, 42, 28)).meta["depth_model"] == "depthcrafter"
    )


def test_turbo_through_the_cli(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stereocrafter.cli import main as cli_main
    from stereocrafter.media.video_io import probe
    from stereocrafter.testing.media import make_video, scene_frames

    source = make_video(tmp_path / "in.mp4", scene_frames(12, 64, 48), fps=12)
    monkeypatch.setenv("STEREOCRAFTER_DEPTH_INPUT_SIZE", "28")
    monkeypatch.setenv("STEREOCRAFTER_INPAINT_STEPS", "1")
    out = tmp_path / "out.mp4"
    args = [str(source), str(out), "--preset", "turbo", "--mode", "sbs", "--weights-dir", str(tiny_weights)]
    assert cli_main(["convert", *args, "--device", "cpu", "-q"]) == 0
    info = probe(out)
    assert (info.num_frames, info.width, info.height) == (12, 128, 48)
