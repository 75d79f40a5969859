"""Long videos on this machine: the whole segment workflow (``convert_segments`` through
``LocalBackend``) on a scene whose depth is known, retries, stitching failures and ``convert-long``
(the depth store, the alignment maths and stitching have their own files)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from stereocrafter.client import convert_segments, plan_segments
from stereocrafter.config import StereoConfig
from stereocrafter.long.align import Alignment
from stereocrafter.long.local import LocalBackend, LocalSegment, cut_segments
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.models.vda_depth import VdaDepthPipeline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.stereo.splatting import disparity_from_depth
from stereocrafter.testing.media import audio_duration, make_video, scene_frames
from stereocrafter.testing.scenes import KnownDepth, KnownVdaModel, convert_both_ways, render

MAX_DISP = 20.0


SEGMENT = 12  # frames per segment of the synthetic scene (1 s at 12 fps)


CUT_AT = 36  # the planted scene cut: segments 0-2 are one shot, segment 3 another


def true_disparity(frames: int) -> dict[int, torch.Tensor]:
    """The disparity (px) of the first ``frames`` frames of the test scene, from its true depth
    normalised once over those frames (one shot)."""
    _, depth = render(4 * SEGMENT, 72, 128, cut_at=CUT_AT)
    shot = torch.from_numpy(depth[:frames]).float()
    normalised = (shot - shot.min()) / (shot.max() - shot.min())
    disparity = disparity_from_depth(normalised[:, None], MAX_DISP)[:, 0]
    return {f: disparity[f] for f in range(frames)}


def boundary_jumps(disparity: dict[int, torch.Tensor], boundaries: list[int]) -> list[float]:
    """Mean absolute disparity change (px) between the last frame before and the first after."""
    return [float((disparity[b] - disparity[b - 1]).abs().mean()) for b in boundaries]


@pytest.fixture(scope="module")
def known_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames, _ = render(4 * SEGMENT, 72, 128, cut_at=CUT_AT)
    # FFV1 (lossless): the depth carried in the blue channel arrives intact
    return make_video(
        tmp_path_factory.mktemp("scene") / "scene.mkv", frames, fps=12, codec="ffv1", pix_fmt="bgr0"
    )


@pytest.mark.parametrize(
    "model",
    ["depthcrafter", pytest.param("vda-small", marks=pytest.mark.slow)],  # 14 s each: one here
)
def test_aligned_segments_keep_the_disparity_continuous_across_boundaries(
    known_scene: Path, inpainting_pipeline, tmp_path: Path, model: str
) -> None:
    """With either depth model's stage (VDA: its own procedure around a known-depth network; its
    depth is stored at VDA's processing size and tagged with its name, and the turbo preset's
    stereo tasks read it back)."""
    if model == "depthcrafter":
        depth_stage: Any = KnownDepth(seed=5)
        depth: Any = depth_stage
        config = StereoConfig(max_disp=MAX_DISP, inpaint_steps=1)
    else:
        depth_stage = KnownVdaModel(seed=5)
        depth = VdaDepthPipeline(depth_stage)
        config = StereoConfig.from_preset("turbo", max_disp=MAX_DISP, inpaint_steps=1, depth_input_size=70)
    pipeline = StereoPipeline(depth, inpainting_pipeline, config)
    segments = cut_segments(known_scene, 1.0)
    assert [s.count for s in segments] == [SEGMENT] * 4
    unaligned, aligned, result = convert_both_ways(pipeline, segments, tmp_path, max_concurrency=2)

    assert result.failed == [] and all(o.ok for o in result.segments)
    assert len({m for m in depth_stage.maps}) == 8  # a different distortion for every depth pass
    chained = [SEGMENT, 2 * SEGMENT]
    before, after = boundary_jumps(unaligned, chained), boundary_jumps(aligned, chained)
    assert min(before) > 3.0, before  # per-segment normalisation jumps by pixels
    assert max(after) < 0.5, after  # one depth scale: below half a pixel at max_disp 20
    # ... and it is the scene's own change there: the first shot's true depth, normalised once
    # over the shot (what one depth scale per shot means), changes by as much at each boundary.
    truth = true_disparity(CUT_AT)
    expected = boundary_jumps(truth, chained)
    assert max(abs(a - t) for a, t in zip(after, expected, strict=True)) < 0.1, (after, expected)
    # A flattened range (every disparity near 0) also has no jumps: the aligned disparity must
    # also span the shot's true disparity range (2 x max_disp), at least 80 % of it.
    shot = torch.stack([aligned[f] for f in range(CUT_AT)])
    true_span = float(torch.stack([truth[f] for f in range(CUT_AT)]).amax() - torch.stack(
        [truth[f] for f in range(CUT_AT)]).amin())  # fmt: skip
    assert float(shot.amax() - shot.amin()) >= 0.8 * true_span, (float(shot.amax() - shot.amin()), true_span)
    # The planted cut is found and not chained across: segment 3 is its own shot.
    cut = result.alignment.boundaries[2]
    assert cut is not None and cut.cut
    assert [s.shot for s in result.alignment.segments if s] == [0, 0, 0, 1]
    # The stereo tasks reused the stored depth: no further depth pass ran.
    assert len(depth_stage.maps) == 8
    assert all("depth" not in (o.result or {}).get("timings", {}) for o in result.segments)


def test_a_failed_segment_is_retried_and_reported_by_index(known_scene: Path, inpainting_pipeline,
                                                           tmp_path: Path) -> None:  # fmt: skip
    pipeline = StereoPipeline(KnownDepth(seed=2), inpainting_pipeline, StereoConfig(inpaint_steps=1))

    class Flaky(LocalBackend):
        """Segment 1's first depth attempt meets a dropped connection; segment 2's stereo task
        always fails as the service would for a broken GPU (a 500)."""

        calls: ClassVar[list[tuple[str, int]]] = []

        def depth(self, source: LocalSegment, depth_output: str, **options: object) -> dict:
            self.calls.append(("depth", source.start))
            if source.start == SEGMENT and self.calls.count(("depth", SEGMENT)) == 1:
                raise ConnectionError("connection reset by peer")
            return super().depth(source, depth_output, **options)

        def stereo(self, source: LocalSegment, output: str, **options: object) -> dict:
            if source.start == 2 * SEGMENT:
                from stereocrafter.client import ServiceError

                raise ServiceError(500, "internal_error", "boom")
            return super().stereo(source, output, **options)

    segments = cut_segments(known_scene, 1.0)
    pairs = [(s, str(tmp_path / f"part{i}.mp4")) for i, s in enumerate(segments)]
    logged: list[str] = []
    result = convert_segments(pairs, Flaky(pipeline, tmp_path), retries=1, backoff=0.01, log=logged.append)
    assert result.failed == [2]
    failed = result.segments[2]
    assert failed.stage == "stereo" and failed.attempts == {"depth": 1, "stereo": 2}
    assert failed.error_code == "internal_error" and not failed.ok
    assert result.segments[1].attempts["depth"] == 2 and result.segments[1].ok
    assert [o.ok for o in result.segments] == [True, True, False, True]
    assert any("retrying" in line for line in logged)
    assert result.as_dict()["failed"] == [2]


def test_a_failed_stitch_keeps_the_converted_segments_and_names_them(
    inpainting_pipeline, tmp_path: Path
) -> None:
    """Every segment converted, then the join fails (here: the output's folder is gone): the
    error names the work folder, and the segments are still in it."""
    from stereocrafter.errors import StitchError
    from stereocrafter.long.local import convert_long

    frames, _ = render(2 * 8, 48, 64)
    source = make_video(tmp_path / "scene.mkv", frames, fps=8, codec="ffv1", pix_fmt="bgr0")
    pipeline = StereoPipeline(KnownDepth(seed=4), inpainting_pipeline, StereoConfig(inpaint_steps=1))
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(StitchError, match=f"they are kept in {work}"):
        convert_long(pipeline, source, tmp_path / "gone" / "out.mkv", segment_seconds=1.0, workdir=work)
    assert sorted(p.name for p in work.glob("segment-*.mp4")) == ["segment-0000.mp4", "segment-0001.mp4"]


def test_the_cli_keeps_its_work_folder_when_stitching_fails(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its own temporary work folder is removed after a run, kept (and named) after a failed join."""
    import stereocrafter.long.local
    from stereocrafter.cli import main
    from stereocrafter.errors import StitchError

    source = make_video(tmp_path / "v.mp4", scene_frames(6, 32, 32), fps=12, audio_codec="aac")
    folders: list[Path] = []

    def fails_at_the_join(pipeline: object, src: Path, out: Path, *, workdir: Path, **_: object) -> None:
        folders.append(workdir)
        (workdir / "segment-0000.mp4").write_bytes(b"converted")
        raise StitchError(f"stitching the converted segments failed (a test); they are kept in {workdir}")

    monkeypatch.setattr(stereocrafter.long.local, "convert_long", fails_at_the_join)
    args = ["convert-long", str(source), str(tmp_path / "o.mp4"), "--weights-dir", str(tiny_weights),
            "--device", "cpu", "-q"]  # fmt: skip
    assert main(args) == 2
    assert f"they are kept in {folders[0]}" in capsys.readouterr().err
    assert (folders[0] / "segment-0000.mp4").exists()


def test_plan_only_runs_no_stereo_task(known_scene: Path, inpainting_pipeline, tmp_path: Path) -> None:
    pipeline = StereoPipeline(KnownDepth(seed=3), inpainting_pipeline, StereoConfig(inpaint_steps=1))
    pairs = [(s, str(tmp_path / f"part{i}.mp4")) for i, s in enumerate(cut_segments(known_scene, 1.0))]
    result = plan_segments(pairs, LocalBackend(pipeline, tmp_path), max_concurrency=1)
    assert isinstance(result.alignment, Alignment) and not any(Path(out).exists() for _, out in pairs)
    assert all(Path(o.depth_uri).exists() for o in result.segments)
    assert "reference" in result.alignment.table()


@pytest.mark.parametrize(
    "option",
    [
        pytest.param(["--plan"], marks=pytest.mark.slow),
        # 15 s: the slow tier (which also runs this preset's CLI twice); instant keeps the CLI here
        pytest.param(None, id="None", marks=pytest.mark.slow),
        pytest.param(["--preset", "turbo"], id="turbo", marks=pytest.mark.slow),  # 15 s: the slow tier
        pytest.param(["--preset", "instant"], id="instant"),  # VDA-S depth, no diffusion: seconds
        pytest.param(["--preset", "clean"], id="clean", marks=pytest.mark.slow),
    ],
)
def test_convert_long_on_the_command_line(
    tiny_weights: Path, tmp_path: Path, option: list[str] | None
) -> None:
    """The CLI on tiny weights: cut, depth, align, stereo, stitch, with the source's audio (turbo:
    Video Depth Anything's tiny weights make and store the depth, at a small input size)."""
    source = make_video(tmp_path / "long.mp4", scene_frames(36, 64, 48), fps=12, audio_codec="aac")
    out = tmp_path / "long_sbs.mp4"
    command = [sys.executable, "-m", "stereocrafter.cli", "convert-long", str(source), str(out),
               "--mode", "sbs", "--segment-seconds", "1", "--weights-dir", str(tiny_weights),
               "--device", "cpu", "-q"]  # fmt: skip
    env = {**os.environ, "STEREOCRAFTER_DEPTH_STEPS": "1", "STEREOCRAFTER_INPAINT_STEPS": "1",
           "STEREOCRAFTER_DEPTH_INPUT_SIZE": "28"}  # fmt: skip
    if option:
        command += option
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    assert "shot" in run.stdout and "reference" in run.stdout  # the alignment table
    parts = tmp_path / ".long_sbs.mp4.parts"  # the default work folder
    if option == ["--plan"]:
        assert not out.exists() and len(list(parts.glob("segment-*.depth.mkv.record.json"))) == 3
        assert f"the depths are kept in {parts}" in run.stdout
        return
    info = probe(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (36, 128, 48, Fraction(12))
    assert info.has_audio and audio_duration(out) == pytest.approx(3.0, abs=0.05)
    assert "3 segments" in run.stdout and "36 frames (12 + 12 + 12), audio: aac copied" in run.stdout
    assert "stereo tag st3d left_right" in run.stdout and not parts.exists()  # removed once stitched
    assert "s of output:" in run.stdout and "GPU-minutes per output minute" in run.stdout


def test_convert_long_refuses_bad_options_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (the command line's ``main``, as its console script calls it): four CLI
    start-ups would cost this test 11 s of the default tier."""
    from stereocrafter.cli import main

    source = make_video(tmp_path / "v.mp4", scene_frames(6, 32, 32), fps=12)
    cases = [
        (["--segment-seconds", "0"], "--segment-seconds must be > 0"),
        (["--plan", "--no-align"], "cannot be combined"),
        (["--workdir", str(tmp_path / "nowhere")], "is not a folder"),
        ([], "is a file; remove it or pass --workdir"),  # the default work folder is taken by a file
    ]
    (tmp_path / ".o.mp4.parts").write_text("not a folder")
    for args, message in cases:
        capsys.readouterr()
        try:
            code = main(["convert-long", str(source), str(tmp_path / "o.mp4"), *args])
        except SystemExit as exit_:  # argparse's own refusals
            code = exit_.code
        stderr = capsys.readouterr().err
        assert code == 2 and len(stderr.strip().splitlines()) == 1, stderr
        assert message in stderr, stderr


def _timeline(path: Path) -> tuple[list[tuple[str, int | None]], np.ndarray]:
    """Every packet's stream and timestamp, and every decoded video frame."""
    import av

    with av.open(str(path)) as container:
        stamps = [(p.stream.type, p.pts) for p in container.demux() if p.size]
    return stamps, np.concatenate(list(iter_frames(path, 16)))


def _testsrc2(path: Path) -> Path:
    """FFmpeg's testsrc2 pattern, 3 s of 96x64 at 24 fps, with an AAC tone: the clip on which two
    convert-long runs once differed (libx264's AVX-512 mb-tree code)."""
    import av

    from stereocrafter.testing.media import make_video

    with av.open("testsrc2=size=96x64:rate=24:duration=3", format="lavfi") as pattern:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in pattern.decode(video=0)])
    return make_video(path, frames, fps=24, audio_codec="aac")


@pytest.mark.slow  # two runs of the CLI with the default preset: about 60 s
def test_two_convert_long_runs_on_a_busy_machine_make_the_same_film(
    tiny_weights: Path, tmp_path: Path
) -> None:
    """The default preset (two diffusion models), 0.25 s segments, 2 steps a stage, two spinning
    processes per CPU beside the runs: every decoded frame of the two films is the same."""
    from tests.support.busy import busy_cpus

    source = _testsrc2(tmp_path / "clip.mp4")
    env = {**os.environ, "STEREOCRAFTER_DEPTH_STEPS": "2", "STEREOCRAFTER_INPAINT_STEPS": "2"}
    films = []
    with busy_cpus():
        for name in ("a", "b"):
            out = tmp_path / f"{name}.mp4"
            command = [sys.executable, "-m", "stereocrafter.cli", "convert-long", str(source), str(out),
                       "--mode", "sbs", "--segment-seconds", "0.25", "--weights-dir", str(tiny_weights),
                       "--device", "cpu", "-q", "--workdir", str(tmp_path / f"{name}-parts")]  # fmt: skip
            (tmp_path / f"{name}-parts").mkdir()
            run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
            assert run.returncode == 0, run.stderr
            assert "11 segments" in run.stdout
            films.append(_timeline(out))
    (stamps_a, frames_a), (stamps_b, frames_b) = films
    assert stamps_a == stamps_b and frames_a.shape[0] == 72 and np.array_equal(frames_a, frames_b)


@pytest.mark.slow  # three runs of the CLI per preset: about 3 min for the three
@pytest.mark.parametrize("preset", ["reference", "turbo", "instant"])
def test_a_killed_convert_long_reuses_its_finished_segments(
    tiny_weights: Path, tmp_path: Path, preset: str
) -> None:
    """SIGKILL after about half of 12 segments, run again: the finished segments (their records
    beside them in the kept work folder) are reused, the rest converted, and the film is the one an
    uninterrupted run makes: frame count, every packet's timestamp and every decoded frame, with the
    machine kept busy throughout."""
    from tests.support.busy import busy_cpus

    source = make_video(tmp_path / "film.mp4", scene_frames(96, 64, 48), fps=16, audio_codec="aac")
    env = {**os.environ, "STEREOCRAFTER_DEPTH_INPUT_SIZE": "28", "STEREOCRAFTER_DEPTH_STEPS": "1",
           "STEREOCRAFTER_INPAINT_STEPS": "1"}  # fmt: skip

    def command(out: Path) -> list[str]:
        return [sys.executable, "-m", "stereocrafter.cli", "convert-long", str(source), str(out), "--mode",
                "sbs", "--segment-seconds", "0.5", "--preset", preset, "--weights-dir", str(tiny_weights),
                "--device", "cpu", "-q"]  # fmt: skip

    whole = tmp_path / "whole.mp4"
    out, parts = tmp_path / "film_sbs.mp4", tmp_path / ".film_sbs.mp4.parts"
    with busy_cpus():
        run = subprocess.run(command(whole), capture_output=True, text=True, timeout=600, env=env)
        assert run.returncode == 0, run.stderr
        assert (
            "12 segments" in run.stdout
            and "reused 0 of 12 segments' stereo outputs and 0 of 12" in run.stdout
        )

        killed = subprocess.Popen(command(out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 600
        while len(list(parts.glob("segment-*.mp4.record.json"))) < 6 and killed.poll() is None:
            assert time.monotonic() < deadline, "the first run never finished 6 segments"
            time.sleep(0.02)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=60)
        finished = len(list(parts.glob("segment-*.mp4.record.json")))
        assert killed.returncode == -signal.SIGKILL and 6 <= finished < 12 and not out.exists()

        again = subprocess.run(command(out), capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr
    assert f"reused {finished} of 12 segments' stereo outputs and 12 of 12 depths" in again.stdout
    assert "this run: GPU time" in again.stdout and "the film: GPU time" in again.stdout
    assert probe(out).num_frames == probe(whole).num_frames == 96
    (stamps, frames), (whole_stamps, whole_frames) = _timeline(out), _timeline(whole)
    assert stamps == whole_stamps and np.array_equal(frames, whole_frames)
    assert not parts.exists()  # removed once the film is stitched


@pytest.mark.slow  # three convert_long runs, 13 s (the default tier checks reuse: test_http, test_records)
def test_a_rerun_converts_only_what_a_crash_left_and_what_changed(
    known_scene: Path, inpainting_pipeline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies in the third stereo task; the rerun redoes only that one (reusing the
    other stereo outputs and every depth) and gives the same film (another ``max_disp``, a
    replaced output: tests/serving/test_http.py and tests/jobs/test_records.py)."""
    import shutil

    import stereocrafter.long.local as local

    scene = Path(shutil.copy(known_scene, tmp_path / "scene.mkv"))

    def fresh_pipeline(**config: Any) -> StereoPipeline:  # the same depths again (KnownDepth's maps)
        return StereoPipeline(
            KnownDepth(seed=3), inpainting_pipeline, StereoConfig(inpaint_steps=1, **config)
        )

    pipeline = fresh_pipeline()
    convert, calls = local.convert_file, []

    def dies_at_the_third(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1])
        if len(calls) == 3:
            raise SystemExit("killed")  # not an Exception: nothing retries it, as with a real kill
        return convert(*args, **kwargs)

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(local, "convert_file", dies_at_the_third)
    with pytest.raises(SystemExit):
        local.convert_long(pipeline, scene, tmp_path / "a.mp4", segment_seconds=1.0, workdir=work)
    monkeypatch.setattr(local, "convert_file", convert)
    finished = len(list(work.glob("segment-*.mp4.record.json")))  # the pool ran the 4th before it ended
    again = local.convert_long(pipeline, scene, tmp_path / "a.mp4", segment_seconds=1.0, workdir=work)
    assert again.result is not None and len(again.segments) == 4 and finished == 3
    assert again.result.reused == {"depth": 4, "stereo": 3}
    assert [s.reused for s in again.result.segments] == [["depth", "stereo"]] * 2 + [
        ["depth"],
        ["depth", "stereo"],
    ]
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    whole = local.convert_long(
        fresh_pipeline(), scene, tmp_path / "b.mp4", segment_seconds=1.0, workdir=fresh
    )
    assert whole.result is not None and whole.result.reused == {"depth": 0, "stereo": 0}
    assert np.array_equal(np.concatenate(list(iter_frames(tmp_path / "a.mp4", 16))),
                          np.concatenate(list(iter_frames(tmp_path / "b.mp4", 16))))  # fmt: skip


def test_a_record_names_the_code_and_every_weight_file_and_a_change_of_either_redoes_the_work(
    weights_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each segment's records name the code (version, sources, libraries) and the SHA-256 of every
    weight file its models loaded; the same code and weights reuse every segment, other code or
    another weight file redoes them."""
    import json
    from dataclasses import replace

    from stereocrafter.jobs import provenance
    from stereocrafter.long.local import convert_long
    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.weights.integrity import read_lock, sha256_of, update_lock

    source = make_video(tmp_path / "v.mp4", scene_frames(24, 64, 48), fps=12)
    config = StereoConfig.from_preset("instant", depth_input_size=28)
    work = tmp_path / "work"
    work.mkdir()

    results = []

    def run() -> dict[str, int]:
        pipeline = load_stereo_pipeline(weights_copy, presets=("instant",), config=config)
        result = convert_long(pipeline, source, tmp_path / "o.mp4", segment_seconds=1.0, workdir=work).result
        assert result is not None and len(result.segments) == 2
        results.append(result)
        return result.reused

    assert run() == {"depth": 0, "stereo": 0}
    files = [row for row in read_lock(weights_copy) if row.model == "vda-small"]  # the checkpoint and the
    (vda,) = [row for row in files if row.key.endswith(".pth")]  # tiny weights' marker
    for name in ("segment-0001.depth.mkv", "segment-0001.mp4"):
        made_of = json.loads((work / f"{name}.record.json").read_text())["recipe"]
        record = json.loads((work / f"{name}.record.json").read_text())
        assert record["code_version"] == provenance.code_identity()["version"]  # for people, not compared
        code = {k: v for k, v in provenance.code_identity().items() if k != "version"}
        assert made_of["code"] == code and made_of["device"] == "cpu"
        assert made_of["weights"] == {
            "vda-small": {row.key: sha256_of(weights_copy / row.key) for row in files}
        }
    assert run() == {"depth": 2, "stereo": 2}
    made, resumed = results  # the resumed run spent nothing; the film still cost what it took to make
    assert (
        resumed.gpu_seconds == 0 and resumed.film_gpu_seconds == made.film_gpu_seconds == made.gpu_seconds > 0
    )
    assert resumed.cost_line().startswith("this run: GPU time 0.0 s for 0.0 s of new output; the film: GPU")

    other_code = {**provenance.code_identity(), "sources": "0" * 64}
    monkeypatch.setattr(provenance, "code_identity", lambda: other_code)
    assert run() == {"depth": 0, "stereo": 0}
    assert run() == {"depth": 2, "stereo": 2}

    checkpoint = weights_copy / vda.key  # another VDA-S checkpoint: one weight nudged
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name] + 1e-3
    torch.save(state, checkpoint)
    update_lock(weights_copy, [replace(vda, size=checkpoint.stat().st_size, sha256=sha256_of(checkpoint))])
    assert run() == {"depth": 0, "stereo": 0}
    made_of = json.loads((work / "segment-0000.mp4.record.json").read_text())["recipe"]
    assert made_of["weights"]["vda-small"][vda.key] == sha256_of(checkpoint) != vda.sha256
