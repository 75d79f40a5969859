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

from stereocrafter.catalog import MODELS, depth_model_of, models_of, parse_presets
from stereocrafter.config import StereoConfig
from stereocrafter.errors import DepthMismatchError, PresetNotServedError, WeightsMissingError
from stereocrafter.media.depthstore import DepthShape, read_depth, write_depth
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.presets import PEAK_GPU_GB_1080P, PRESET_NAMES
from stereocrafter.serving.weights import download_plan, download_weights
from stereocrafter.settings import load_settings
from stereocrafter.stages.depthcrafter import DepthCrafterStage
from stereocrafter.stages.registry import components_of, processing_size
from stereocrafter.stages.vda import VdaStage
from stereocrafter.testing.hub import HubServer
from tests.support.stops import Calls


def test_turbo_is_a_table_over_the_defaults() -> None:
    turbo = StereoConfig.from_preset("turbo")
    assert turbo.depth_model == "vda-small" and turbo.depth_input_size == 518  # the published --input_size
    assert (turbo.inpaint_guidance, turbo.inpaint_steps, turbo.inpaint_max_res, turbo.inpaint_multiple) == (
        1.0, 8, 512, 64,
    )  # fmt: skip
    assert turbo.holes_only and (turbo.hole_dilate_px, turbo.hole_feather_px) == (4, 4)
    assert StereoConfig.from_preset("fast").depth_model == StereoConfig().depth_model == "depthcrafter"
    with pytest.raises(
        ValueError, match="unknown depth model 'midas'; choose one of depthcrafter, vda-small"
    ):
        StereoConfig(depth_model="midas")
    with pytest.raises(ValueError, match="depth_input_size must be in"):
        StereoConfig(depth_input_size=600)


def test_the_catalog_names_each_preset_s_models_and_licences() -> None:
    assert [depth_model_of(p) for p in PRESET_NAMES] == ["depthcrafter", "depthcrafter", "vda-small"]
    assert models_of(["turbo"]) == ("vda-small", "stereocrafter", "svd")
    assert models_of(["fast", "turbo"]) == ("depthcrafter", "vda-small", "stereocrafter", "svd")
    assert MODELS["vda-small"].licence == "Apache-2.0"
    assert set(PEAK_GPU_GB_1080P) == set(PRESET_NAMES)  # what doctor compares the GPU with
    assert "research use only" in MODELS["depthcrafter"].licence
    assert "research use only" in MODELS["stereocrafter"].licence


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


def test_the_vda_stage_streams_its_depth_with_progress(vda_pipeline, inpainting_pipeline) -> None:
    """40 frames through the VDA stage: raw depth at its processing size, progress per window,
    the stop check after every model call."""
    pipeline = StereoPipeline(vda_pipeline, inpainting_pipeline)
    config = StereoConfig.from_preset("turbo", depth_input_size=28)
    frames = (np.random.default_rng(0).random((40, 48, 64, 3)) * 255).astype(np.uint8)
    reported: list[int] = []
    checks: list[int] = []
    hooks = RunHooks(
        progress=lambda _, done, __: reported.append(done), stop=Calls(lambda: checks.append(reported[-1]))
    )
    raw = pipeline.depth_pass(lambda: iter([frames[:16], frames[16:]]), num_frames=40, width=64, height=48,
                              config=config, hooks=hooks)  # fmt: skip
    assert raw.shape == (40, 1, 28, 42) and raw.dtype == torch.float32 and bool((raw >= 0).all())
    assert reported == list(range(41))
    # one check after each window's model call (0-31, then 22-53 padded), when the frames before
    # it are reported: the first window finishes frames 0-23 (its last 8 wait for the blend)
    assert checks == [0, 24]


def test_a_turbo_only_load_needs_and_loads_no_depthcrafter_file(tiny_weights: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    shutil.rmtree(weights / "tencent")  # no DepthCrafter at all
    pipeline = load_stereo_pipeline(weights, presets=("turbo",))
    assert list(pipeline.depth_stages) == ["vda-small"] and pipeline.depth is None
    with pytest.raises(WeightsMissingError, match="tencent/DepthCrafter"):
        load_stereo_pipeline(weights, presets=("turbo", "fast"))
    assert [c.name for c in components_of(["turbo"])] == [
        "vae", "image_encoder", "feature_extractor", "scheduler", "inpainting_unet", "vda",
    ]  # fmt: skip


def test_a_turbo_only_download_fetches_no_depthcrafter_file(tiny_weights: Path, tmp_path: Path) -> None:
    assert "tencent/DepthCrafter" not in download_plan(["turbo"])
    assert set(download_plan()) == {m.repo for m in MODELS.values()}
    with HubServer(tiny_weights, "hf_t") as hub:
        sizes = download_weights(tmp_path / "w", "hf_t", endpoint=hub.url, presets=["turbo"])
        assert not any("DepthCrafter" in request for request in hub.requests)
        assert "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth" in hub.downloads
    assert set(sizes) == {"stabilityai/stable-video-diffusion-img2vid-xt-1-1", "TencentARC/StereoCrafter",
                          "depth-anything/Video-Depth-Anything-Small"}  # fmt: skip
    vda_repo = tiny_weights / "depth-anything/Video-Depth-Anything-Small"  # the checkpoint and the marker
    assert sizes["depth-anything/Video-Depth-Anything-Small"] == sum(
        f.stat().st_size for f in vda_repo.iterdir()
    )


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


@pytest.mark.parametrize(
    ("env", "presets", "default"),
    [
        ({}, PRESET_NAMES, "reference"),
        ({"STEREOCRAFTER_PRESETS": "turbo"}, ("turbo",), "turbo"),
        ({"STEREOCRAFTER_PRESETS": " fast, turbo ,fast"}, ("fast", "turbo"), "fast"),
        ({"STEREOCRAFTER_PRESETS": "turbo,reference"}, ("turbo", "reference"), "reference"),
        (
            {"STEREOCRAFTER_PRESETS": "fast,turbo", "STEREOCRAFTER_PRESET": "turbo"},
            ("fast", "turbo"),
            "turbo",
        ),
    ],
)
def test_the_presets_served(env: dict[str, str], presets: tuple[str, ...], default: str) -> None:
    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", **env})
    assert (settings.presets, settings.preset) == (presets, default)


def test_a_default_preset_that_is_not_served_or_an_unknown_one_is_refused() -> None:
    env = {"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "turbo", "STEREOCRAFTER_PRESET": "fast"}
    with pytest.raises(ValueError, match="PRESET is fast, which STEREOCRAFTER_PRESETS does not serve"):
        load_settings(env)
    with pytest.raises(ValueError, match="unknown preset 'quick'"):
        parse_presets("turbo,quick")
    assert parse_presets(" , ") == PRESET_NAMES


def test_doctor_lists_every_model_with_its_licence_and_whether_it_is_loaded(tiny_weights: Path) -> None:
    from stereocrafter.doctor import diagnose

    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "turbo"})
    lines = diagnose(settings, tiny_weights)
    models = {line.split()[1]: line for line in lines if line.startswith("  model ")}
    assert "presets served: turbo (STEREOCRAFTER_PRESETS)" in lines
    assert set(models) == {"depthcrafter", "vda-small", "stereocrafter", "svd"}
    assert models["vda-small"].endswith("Apache-2.0: loaded for turbo; weights present")
    assert "research use only (DepthCrafter LICENSE): not loaded" in models["depthcrafter"]
    assert "research use only" in models["stereocrafter"] and "loaded for turbo" in models["stereocrafter"]
    assert "non-commercial" in models["svd"] and "loaded for turbo" in models["svd"]
    assert "tencent/DepthCrafter" not in next(line for line in lines if line.startswith("download"))


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
