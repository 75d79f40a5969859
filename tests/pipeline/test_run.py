"""End to end: video file -> StereoPipeline (tiny weights, CPU) -> stereo video file (CLI: test_cli.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.local import convert_file
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.testing.media import audio_duration


def decode(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_frames(path)))


@pytest.mark.parametrize(("mode", "size"), [("sbs", (192, 64)), ("anaglyph", (96, 64))])
def test_end_to_end_file(
    stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path, mode: str, size: tuple
) -> None:
    out = tmp_path / f"out_{mode}.mp4"
    stages: list[str] = []
    hooks = RunHooks(progress=lambda s, d, t: stages.append(s))
    result = convert_file(stereo, clip_with_audio, out, mode=mode, hooks=hooks)
    info = probe(out)
    assert (info.width, info.height) == size == (result.width, result.height)
    assert info.num_frames == 26 == result.num_frames
    assert info.fps == Fraction(30000, 1001)
    assert info.has_audio
    assert audio_duration(out) == pytest.approx(audio_duration(clip_with_audio), abs=1001 / 30000)
    assert {"depth", "splat", "inpainting", "compose_encode", "total"} <= set(result.timings)
    assert stages[0] == "depth" and stages[-1] == "inpainting"


def test_sbs_left_half_is_the_source(stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path) -> None:
    out = convert_file(stereo, clip_with_audio, tmp_path / "sbs.mp4", mode="sbs").output
    left = decode(out)[:, :, :96].astype(float)
    source = decode(clip_with_audio).astype(float)
    psnr = 10 * np.log10(255.0**2 / np.mean((left - source) ** 2))
    assert psnr > 35.0


def test_same_seed_same_output(stereo: StereoPipeline, clip_with_audio: Path) -> None:
    """Compares the composed frames the pipeline hands to the encoder: the libx264 in PyAV's wheel
    does not always encode identical frames to identical bitstreams on this machine (seen with
    threads=1 too), so comparing encoded files made this test flaky."""
    info = probe(clip_with_audio)

    def frames(pipeline: StereoPipeline) -> np.ndarray:
        out: list[np.ndarray] = []
        pipeline.run(
            lambda: iter_frames(clip_with_audio, 16),
            out.append,
            num_frames=info.num_frames,
            width=info.width,
            height=info.height,
            mode="anaglyph",
        )
        return np.concatenate(out)

    a, b = frames(stereo), frames(stereo)
    assert np.array_equal(a, b)
    other = StereoPipeline(
        stereo.depth, stereo.inpainting, StereoConfig(depth_steps=2, inpaint_steps=2, seed=7)
    )
    assert not np.array_equal(a, frames(other))


@pytest.mark.parametrize("num_frames", [1, 22, 23, 24, 50])
def test_every_frame_once_and_odd_sizes(stereo: StereoPipeline, num_frames: int) -> None:
    frames = (np.random.default_rng(num_frames).random((num_frames, 45, 75, 3)) * 255).astype(np.uint8)
    out: list[np.ndarray] = []
    config = StereoConfig(depth_steps=1, inpaint_steps=1, depth_window=16, depth_overlap=5)
    pipeline = StereoPipeline(stereo.depth, stereo.inpainting, config)
    result = pipeline.run(
        lambda: iter([frames[i : i + 7] for i in range(0, num_frames, 7)]),
        out.append,
        num_frames=num_frames,
        width=75,
        height=45,
        mode="sbs",
    )
    stacked = np.concatenate(out)
    assert stacked.shape == (num_frames, 45, 150, 3) and result.num_frames == num_frames
    # The left half is the input, frame for frame (and in order).
    assert np.array_equal(stacked[:, :, :75], frames)


@pytest.mark.parametrize("preset", ["fast", "turbo"])
def test_fast_and_turbo_keep_every_non_hole_pixel_of_the_splat(
    stereo: StereoPipeline, vda_pipeline, clip_with_audio: Path, monkeypatch: pytest.MonkeyPatch, preset: str
) -> None:
    """At a working size below the source (96x64 -> 64x40 here, as 1920x1080 -> 1024x576; turbo:
    64x64, sides multiples of 64, as 1920x1080 -> 448x256), the right view is the splat exactly
    wherever the grown-hole weight is 0, and the inpaint on every hole pixel."""
    import stereocrafter.pipeline.run as pipeline_module
    from stereocrafter.stereo.compose import to_uint8

    seen: list[tuple[torch.Tensor, ...]] = []
    real_weights, real_merge = pipeline_module.hole_weights, pipeline_module.merge_right_view

    def spy_weights(occlusion: torch.Tensor, dilate: int, feather: int) -> torch.Tensor:
        weight = real_weights(occlusion, dilate, feather)
        seen.append((occlusion, weight))
        return weight

    def spy_merge(warped: torch.Tensor, inpainted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        merged = real_merge(warped, inpainted, weight)
        seen.append((warped, inpainted, merged))
        return merged

    monkeypatch.setattr(pipeline_module, "hole_weights", spy_weights)
    monkeypatch.setattr(pipeline_module, "merge_right_view", spy_merge)
    # (tiny random weights give noisy depth: a small disparity and margin leave some splat to check)
    config = StereoConfig.from_preset(
        preset,
        depth_steps=1,
        depth_input_size=28,
        inpaint_steps=1,
        inpaint_max_res=64,
        max_disp=1.5,
        hole_dilate_px=1,
        hole_feather_px=1,
    )
    fast = StereoPipeline([stereo.depth, vda_pipeline], stereo.inpainting, config)
    sizes: list[tuple[int, ...]] = []
    real_inpaint = fast.inpainting.iter_inpaint

    def spy_inpaint(source, **kwargs):  # type: ignore[no-untyped-def]
        for start, right in real_inpaint(source, **kwargs):
            sizes.append(tuple(right.shape[-2:]))
            yield start, right

    monkeypatch.setattr(fast.inpainting, "iter_inpaint", spy_inpaint)
    info = probe(clip_with_audio)
    out: list[np.ndarray] = []
    fast.run(lambda: iter_frames(clip_with_audio, 16), out.append, num_frames=info.num_frames,
             width=info.width, height=info.height, mode="sbs")  # fmt: skip
    right = np.concatenate(out)[:, :, 96:]
    occlusion = torch.cat([s[0] for s in seen[0::2]])
    weight = torch.cat([s[1] for s in seen[0::2]])
    warped = torch.cat([s[0] for s in seen[1::2]])
    inpainted = torch.cat([s[1] for s in seen[1::2]])
    assert warped.shape == (26, 3, 64, 96) and inpainted.shape == warped.shape
    assert set(sizes) == {(40, 64) if preset == "fast" else (64, 64)}  # the inpainting's working size
    keep = (weight == 0).expand_as(warped)
    assert 0.05 < float((weight > 0).float().mean()) < 0.95  # some holes, mostly splat
    expected = to_uint8(warped).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(right[keep.permute(0, 2, 3, 1).numpy()], expected[keep.permute(0, 2, 3, 1).numpy()])
    assert bool((weight[occlusion >= 0.5] == 1).all())
    hole = (occlusion >= 0.5).expand_as(warped)
    merged = torch.cat([s[2] for s in seen[1::2]])
    torch.testing.assert_close(merged[hole], inpainted[hole], rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["reference", "fast", "turbo"])
def test_every_preset_keeps_frames_size_and_fps(
    stereo: StereoPipeline, vda_pipeline, clip_with_audio: Path, tmp_path: Path, preset: str
) -> None:
    config = StereoConfig.from_preset(preset, depth_steps=1, inpaint_steps=1, depth_input_size=28)
    pipeline = StereoPipeline([stereo.depth, vda_pipeline], stereo.inpainting, config)
    result = convert_file(pipeline, clip_with_audio, tmp_path / f"{preset}.mp4", mode="sbs")
    info = probe(tmp_path / f"{preset}.mp4")
    assert (info.num_frames, info.width, info.height, info.fps) == (26, 192, 64, Fraction(30000, 1001))
    assert result.num_frames == 26 and info.has_audio


def test_progress_is_reported_for_every_frame_of_each_stage(stereo: StereoPipeline) -> None:
    """From 0 at the stage's start to the last frame, one call per frame, in order: a bar's clock
    and rate are the stage's (three depth windows and three inpainting chunks here)."""
    frames = (np.random.default_rng(1).random((50, 32, 48, 3)) * 255).astype(np.uint8)
    config = StereoConfig(depth_steps=2, inpaint_steps=2, depth_window=20, depth_overlap=5)
    pipeline = StereoPipeline(stereo.depth, stereo.inpainting, config)
    reports: list[tuple[str, int, int]] = []
    pipeline.run(lambda: iter([frames]), lambda chunk: None, num_frames=50, width=48, height=32,
                 mode="sbs", hooks=RunHooks(progress=lambda *r: reports.append(r)))  # fmt: skip
    for stage in ("depth", "inpainting"):
        dones = [done for s, done, total in reports if s == stage]
        assert dones == list(range(51)), dones
    assert [s for s, _, _ in reports] == ["depth"] * 51 + ["inpainting"] * 51


def test_a_stage_that_asks_gets_the_right_view_s_own_disparity(tiny_weights: Path) -> None:
    """``needs_disparity``: the source splats the disparity with the colours (same weights); what a
    stage reads is that splat at the working size, in its pixels."""
    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.stages.fill import BackgroundFillStage
    from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat
    from stereocrafter.testing.media import scene_frames

    seen: list[torch.Tensor] = []
    depths: list[torch.Tensor] = []
    lefts: list[torch.Tensor] = []

    class Keep:
        def on_start(self, **_: object) -> None:
            pass

        def on_frames(self, start, left, depth, occlusion, right) -> None:  # type: ignore[no-untyped-def]
            depths.append(depth.clone())
            lefts.append(left.clone())

    vda = load_stereo_pipeline(tiny_weights, presets=("instant",)).depth_stages["vda-small"]
    probe = BackgroundFillStage.load(tiny_weights, device=torch.device("cpu"), dtype=torch.float32, shared={})
    probe.per_chunk.register_forward_pre_hook(lambda module, args: seen.append(args[2].clone()))
    pipeline = StereoPipeline([vda], [probe], presets=("instant",))
    config = StereoConfig.from_preset("instant", depth_input_size=28, max_disp=6.0)
    frames = scene_frames(10, 64, 48)
    pipeline.run(lambda: iter([frames]), lambda _: None, num_frames=10, width=64, height=48, config=config,
                 hooks=RunHooks(observer=Keep()))  # fmt: skip
    disparity = disparity_from_depth(torch.cat(depths), config.max_disp)
    expected, _ = forward_splat(torch.cat([torch.cat(lefts), disparity], 1), disparity)
    got = torch.cat(seen)
    assert got.shape == (10, 1, 48, 64) and float(got.abs().max()) > 1.0
    assert torch.allclose(got, expected[:, 3:], atol=1e-5)
