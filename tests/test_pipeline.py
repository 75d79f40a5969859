"""End to end: video file -> StereoPipeline (tiny weights, CPU) -> stereo video file; and the CLI."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from stereocrafter.cli import main as cli_main
from stereocrafter.convert import convert_file
from stereocrafter.pipeline import SequentialFrames, StereoConfig, StereoPipeline
from stereocrafter.video_io import iter_frames, probe
from tests.media import audio_duration, make_video, scene_frames

FAST = StereoConfig(depth_steps=2, inpaint_steps=2)


@pytest.fixture(scope="module")
def stereo(depth_pipeline, inpainting_pipeline) -> StereoPipeline:
    return StereoPipeline(depth_pipeline, inpainting_pipeline, FAST)


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "left.mp4"
    return make_video(path, scene_frames(26, 96, 64), fps=Fraction(30000, 1001), audio_codec="aac")


def decode(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_frames(path)))


@pytest.mark.parametrize(("mode", "size"), [("sbs", (192, 64)), ("anaglyph", (96, 64))])
def test_end_to_end_file(
    stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path, mode: str, size: tuple
) -> None:
    out = tmp_path / f"out_{mode}.mp4"
    stages: list[str] = []
    result = convert_file(stereo, clip_with_audio, out, mode=mode, progress=lambda s, d, t: stages.append(s))
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


def test_sequential_frames_serves_overlapping_ranges_once() -> None:
    data = torch.arange(10).view(10, 1, 1, 1).float()
    pulled: list[int] = []

    def chunks():
        for i in range(0, 10, 3):
            pulled.append(i)
            yield data[i : i + 3].numpy()

    source = SequentialFrames(chunks(), 10, torch.from_numpy)
    assert source[0:4].flatten().tolist() == [0, 1, 2, 3]
    assert source[2:7].flatten().tolist() == [2, 3, 4, 5, 6]
    assert source[5:10].flatten().tolist() == [5, 6, 7, 8, 9]
    assert pulled == [0, 3, 6, 9]  # each chunk decoded once
    with pytest.raises(IndexError, match="released"):
        source[0:2]
    short = SequentialFrames(iter([data[:3].numpy()]), 10, torch.from_numpy)
    with pytest.raises(ValueError, match="ended after 3 frames"):
        short[0:5]


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_disp"):
        StereoConfig(max_disp=-1)
    with pytest.raises(ValueError, match="holes_only"):
        StereoConfig(inpaint_max_res=1024)  # a resized inpaint over the whole frame: refused
    with pytest.raises(ValueError, match="unknown preset 'turbo'; choose one of reference, fast"):
        StereoConfig.from_preset("turbo")


def test_presets_are_tables_over_the_reference_defaults() -> None:
    assert StereoConfig.from_preset("reference") == StereoConfig()
    fast = StereoConfig.from_preset("fast", seed=7)
    # DepthCrafter's own inference defaults (run.py): 5 steps, no CFG, window 110 / overlap 25
    assert (fast.depth_steps, fast.depth_guidance, fast.depth_window, fast.depth_overlap) == (5, 1.0, 110, 25)
    # one conditional inpainting pass, the same 8 steps, at most 1024 px, merged into the holes
    assert (fast.inpaint_steps, fast.inpaint_guidance, fast.inpaint_max_res) == (8, 1.0, 1024)
    assert fast.holes_only and fast.seed == 7 and fast.depth_max_res == StereoConfig().depth_max_res


def test_fast_keeps_every_non_hole_pixel_of_the_splat(
    stereo: StereoPipeline, clip_with_audio: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At a working size below the source (96x64 -> 64x40 here, as 1920x1080 -> 1024x576), the
    right view is the splat exactly wherever the grown-hole weight is 0, and the inpaint on every
    hole pixel."""
    import stereocrafter.pipeline as pipeline_module
    from stereocrafter.compose import to_uint8

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
        "fast",
        depth_steps=1,
        inpaint_steps=1,
        inpaint_max_res=64,
        max_disp=1.5,
        hole_dilate_px=1,
        hole_feather_px=1,
    )
    fast = StereoPipeline(stereo.depth, stereo.inpainting, config)
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
    keep = (weight == 0).expand_as(warped)
    assert 0.05 < float((weight > 0).float().mean()) < 0.95  # some holes, mostly splat
    expected = to_uint8(warped).permute(0, 2, 3, 1).numpy()
    assert np.array_equal(right[keep.permute(0, 2, 3, 1).numpy()], expected[keep.permute(0, 2, 3, 1).numpy()])
    assert bool((weight[occlusion >= 0.5] == 1).all())
    hole = (occlusion >= 0.5).expand_as(warped)
    merged = torch.cat([s[2] for s in seen[1::2]])
    torch.testing.assert_close(merged[hole], inpainted[hole], rtol=0, atol=1e-6)


@pytest.mark.parametrize("preset", ["reference", "fast"])
def test_both_presets_keep_frames_size_and_fps(
    stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path, preset: str
) -> None:
    config = StereoConfig.from_preset(preset, depth_steps=1, inpaint_steps=1)
    pipeline = StereoPipeline(stereo.depth, stereo.inpainting, config)
    result = convert_file(pipeline, clip_with_audio, tmp_path / f"{preset}.mp4", mode="sbs")
    info = probe(tmp_path / f"{preset}.mp4")
    assert (info.num_frames, info.width, info.height, info.fps) == (26, 192, 64, Fraction(30000, 1001))
    assert result.num_frames == 26 and info.has_audio


def test_debug_grid(stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.mp4"
    convert_file(stereo, clip_with_audio, tmp_path / "o.mp4", mode="anaglyph", grid_path=grid)
    info = probe(grid)
    assert (info.width, info.height, info.num_frames) == (192, 128, 26)
    frames = decode(grid).astype(float)
    source = decode(clip_with_audio).astype(float)
    assert (
        10 * np.log10(255.0**2 / np.mean((frames[:, :64, :96] - source) ** 2)) > 35.0
    )  # top-left: left view
    mask, depth = frames[:, 64:, :96], frames[:, :64, 96:]
    # bottom-left: a grey-scale mask (4:2:0 chroma smears its noisy edges a little); top-right:
    # the inferno colouring, far from grey.
    assert np.mean(np.abs(mask[..., 0] - mask[..., 1])) < 15
    assert np.mean(np.abs(depth[..., 0] - depth[..., 2])) > 40


# --- the command line ------------------------------------------------------------------------


def test_cli_convert(
    tiny_weights: Path, clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "cli.mp4"
    weights = ["--weights-dir", str(tiny_weights)]
    code = cli_main(
        ["convert", str(clip_with_audio), str(out), "--mode", "sbs", *weights, "--device", "cpu", "-q"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "192x64, 26 frames at 30000/1001 fps, audio kept" in printed
    assert "tiny random test weights" in printed  # never presented as a real conversion
    assert probe(out).num_frames == 26


def test_cli_preset(
    tiny_weights: Path, clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("STEREOCRAFTER_DEPTH_STEPS", "1")
    monkeypatch.setenv("STEREOCRAFTER_INPAINT_STEPS", "1")
    args = ["convert", str(clip_with_audio), "--weights-dir", str(tiny_weights), "--device", "cpu", "-q"]
    assert cli_main([*args[:2], str(tmp_path / "fast.mp4"), *args[2:], "--preset", "fast"]) == 0
    assert "(fast preset)" in capsys.readouterr().out
    assert probe(tmp_path / "fast.mp4").num_frames == 26
    assert cli_main([*args[:2], str(tmp_path / "x.mp4"), *args[2:], "--preset", "turbo"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "stereocrafter: error: unknown preset 'turbo'; choose one of reference, fast"
    assert not (tmp_path / "x.mp4").exists()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Counts model loads by the CLI (a spy around the real loader)."""
    import stereocrafter.loading as loading

    calls: list[object] = []
    real = loading.load_stereo_pipeline

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "load_stereo_pipeline", counting)
    return calls


def truncated_copy(tmp_path: Path) -> Path:
    """A 120-frame MP4 with its index in front, cut at 70%: the header still says 120 frames."""
    from stereocrafter.video_io import VideoWriter

    whole = tmp_path / "whole.mp4"
    with VideoWriter(whole, fps=24, width=64, height=48) as writer:
        writer.write(scene_frames(120, 64, 48))
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    return cut


def run_cli(argv: list[str]) -> int:
    """The CLI's exit status, argparse's own exits included."""
    try:
        return cli_main(argv)
    except SystemExit as done:
        return int(done.code or 0)


MISSING_DIR = "folder {tmp}/no/dir of the output does not exist"
CLI_USER_ERRORS = [
    ("output folder missing", ["{clip}", "{tmp}/no/dir/o.mp4"], MISSING_DIR),
    (
        "grid folder missing",
        ["{clip}", "{tmp}/o.mp4", "--save-grid", "{tmp}/no/g.mp4"],
        "of the grid does not",
    ),
    ("crf out of range", ["{clip}", "{tmp}/o.mp4", "--crf", "99"], "--crf must be in 0-51, got 99"),
    ("negative max_disp", ["{clip}", "{tmp}/o.mp4", "--max-disp", "-5"], "--max-disp must be in 0-200"),
    ("unsupported suffix", ["{clip}", "{tmp}/o.txt2"], "has the suffix '.txt2'"),
    ("output is a folder", ["{clip}", "{tmp}"], "is a directory"),
    ("output is the input", ["{clip}", "{clip}"], "must differ from the input"),
    ("truncated input", ["{cut}", "{tmp}/o.mp4"], "truncated video: "),
    ("unknown preset", ["{clip}", "{tmp}/o.mp4", "--preset", "turbo"], "unknown preset 'turbo'"),
    ("bad tile count", ["{clip}", "{tmp}/o.mp4", "--tile-num", "3"], "--tile-num: invalid choice"),
    ("missing argument", ["{clip}"], "the following arguments are required: output"),
]


@pytest.mark.parametrize(("case", "args", "message"), CLI_USER_ERRORS, ids=[c[0] for c in CLI_USER_ERRORS])
def test_cli_user_errors_are_one_line_before_any_model_loads(
    case: str,
    args: list[str],
    message: str,
    clip_with_audio: Path,
    tmp_path: Path,
    tiny_weights: Path,
    loads: list[object],
    capsys: pytest.CaptureFixture,
) -> None:
    values = {"clip": str(clip_with_audio), "tmp": str(tmp_path), "cut": ""}
    if "{cut}" in args:
        values["cut"] = str(truncated_copy(tmp_path))
    argv = ["convert", *(a.format(**values) for a in args), "--weights-dir", str(tiny_weights), "-q"]
    code = run_cli(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("stereocrafter: error: "), err
    assert message.format(**values) in err and "Traceback" not in err
    assert loads == []  # nothing was loaded
    assert not (tmp_path / "o.mp4").exists()


def test_cli_bad_environment_and_missing_weights_are_one_short_line(
    clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "o.mp4")
    monkeypatch.setenv("STEREOCRAFTER_PRESET", "turbo")
    assert run_cli(["convert", str(clip_with_audio), out, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown preset 'turbo'" in err
    monkeypatch.delenv("STEREOCRAFTER_PRESET")
    assert run_cli(["convert", str(clip_with_audio), out, "--weights-dir", str(tmp_path), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "6 components" in err and len(err) < 400 and "doctor" in err


def test_doctor(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["doctor", "--weights-dir", str(tiny_weights), "--preset", "fast"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device: ") and "torch " in out[1] and "PyAV" in out[1]
    assert "complete" in out[2] and "TINY RANDOM" in out[2]
    assert "preset fast needs about 17.4 GB" in out[3] and "download at start-up: no" in out[4]
    assert cli_main(["doctor", "--weights-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "6 of 6 components missing" in out and "missing: tencent/DepthCrafter/config.json" in out


def test_progress_is_reported_for_every_frame_of_each_stage(stereo: StereoPipeline) -> None:
    """From 0 at the stage's start to the last frame, one call per frame, in order: a bar's clock
    and rate are the stage's (three depth windows and three inpainting chunks here)."""
    frames = (np.random.default_rng(1).random((50, 32, 48, 3)) * 255).astype(np.uint8)
    config = StereoConfig(depth_steps=2, inpaint_steps=2, depth_window=20, depth_overlap=5)
    pipeline = StereoPipeline(stereo.depth, stereo.inpainting, config)
    reports: list[tuple[str, int, int]] = []
    pipeline.run(lambda: iter([frames]), lambda chunk: None, num_frames=50, width=48, height=32,
                 mode="sbs", progress=lambda *r: reports.append(r))  # fmt: skip
    for stage in ("depth", "inpainting"):
        dones = [done for s, done, total in reports if s == stage]
        assert dones == list(range(51)), dones
    assert [s for s, _, _ in reports] == ["depth"] * 51 + ["inpainting"] * 51


def test_known_library_messages_are_dropped_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from stereocrafter.thirdparty import quiet_known_messages

    quiet_known_messages()
    diffusers_log = logging.getLogger("diffusers.models.modeling_utils")
    transformers_log = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING):
        diffusers_log.warning("There are modules in X that should be kept in float32: []. Casting ...")
        transformers_log.warning(
            "`CLIPImageProcessor` requires torchvision (not installed); falling back to ..."
        )
        diffusers_log.warning("There are modules in X that should be kept in float32: ['norm']. Casting ...")
        transformers_log.warning("something else entirely")
    assert [r.getMessage()[:30] for r in caplog.records] == [
        "There are modules in X that sh",
        "something else entirely",
    ]


def test_cli_report(
    tiny_weights: Path, clip_with_audio: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import json

    from PIL import Image

    monkeypatch.setenv("STEREOCRAFTER_DEPTH_STEPS", "1")
    monkeypatch.setenv("STEREOCRAFTER_INPAINT_STEPS", "1")
    report = tmp_path / "clip.report.json"
    argv = ["convert", str(clip_with_audio), str(tmp_path / "o.mp4"), "--weights-dir", str(tiny_weights)]
    assert run_cli([*argv, "-q", "--report", str(report)]) == 0
    assert f"report: {report} and {report.with_suffix('.png')}" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["num_frames"] == 26 and len(data["frames"]) == 26 and data["tiny_weights"] is True
    assert data["seams"] == [23] and data["clip"]["seam_stability"]["seams"] == 1  # chunks [0,23) [6,26)
    with Image.open(report.with_suffix(".png")) as sheet:
        assert sheet.size[0] == 988
    assert run_cli([*argv, "-q", "--report", str(tmp_path / "r.txt")]) == 2
    assert "must name a .json file" in capsys.readouterr().err


def test_cli_clear_errors(tmp_path: Path, clip_with_audio: Path, capsys: pytest.CaptureFixture) -> None:
    code = cli_main(
        ["convert", str(clip_with_audio), str(tmp_path / "o.mp4"), "--weights-dir", str(tmp_path), "-q"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "model weights missing" in err and "6 components" in err and "Traceback" not in err
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    code = cli_main(["convert", str(bad), str(tmp_path / "o.mp4"), "--weights-dir", str(tmp_path), "-q"])
    assert code == 2 and "not a readable media file" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()
