"""Long videos on this machine: the depth store, the alignment maths, stitching, and the whole
segment workflow (``convert_segments`` through ``LocalBackend``) on a scene whose depth is known."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest
import torch

from stereocrafter.align import Alignment, align, fit_affine
from stereocrafter.client import convert_segments, plan_segments
from stereocrafter.depthstore import DepthShape, depth_summary, read_depth, write_depth
from stereocrafter.errors import DepthMismatchError, InvalidDepthError, VideoDecodeError
from stereocrafter.long import LocalBackend, LocalSegment, cut_segments
from stereocrafter.pipeline import StereoConfig, StereoPipeline
from stereocrafter.splatting import disparity_from_depth
from stereocrafter.stitch import check_stitchable, stitch
from stereocrafter.video_io import iter_frames, probe
from tests.long_scene import KnownDepth, convert_both_ways, render
from tests.media import audio_duration, make_video, scene_frames
from tests.memory import PeakGrowth

MAX_DISP = 20.0
SEGMENT = 12  # frames per segment of the synthetic scene (1 s at 12 fps)
CUT_AT = 36  # the planted scene cut: segments 0-2 are one shot, segment 3 another


# --- the depth store ---------------------------------------------------------------------------


def test_the_depth_store_round_trips_within_its_16_bit_step(tmp_path: Path) -> None:
    torch.manual_seed(0)
    depth = torch.rand(5, 1, 36, 64) * 3.0 - 1.2  # any float range, not only [0, 1]
    meta = write_depth(tmp_path / "d.mkv", depth, fps=Fraction(24), source_width=128, source_height=72)
    stored = read_depth(tmp_path / "d.mkv", DepthShape(5, 128, 72, 64, 36))
    step = (meta["high"] - meta["low"]) / 65535
    assert stored.depth.shape == depth.shape
    assert (stored.low, stored.high) == (float(depth.min()), float(depth.max()))  # exact
    assert float((stored.depth - depth).abs().max()) <= step / 2 + 1e-6
    for shape, message in [
        (DepthShape(6, 128, 72, 64, 36), "5 frames; the segment has 6"),
        (DepthShape(5, 64, 48, 64, 36), "128x72 segment; this segment is 64x48"),
        (DepthShape(5, 128, 72, 128, 64), "frames are 64x36; the depth stage makes 128x64"),
    ]:
        with pytest.raises(DepthMismatchError, match=message):
            read_depth(tmp_path / "d.mkv", shape)


def depth_bomb(path: Path, frames: int, size: int, tag: dict) -> Path:
    """``frames`` flat ``size`` x ``size`` 16-bit frames: a few KB on disk, ``frames`` x
    ``size``² x 2 bytes decoded. One frame is encoded and its packet repeated (FFV1 frames are
    all key frames), so making it costs nothing either."""
    with av.open(str(path), mode="w", format="matroska") as out:
        out.metadata["STEREOCRAFTER_DEPTH"] = json.dumps(tag)
        stream = out.add_stream("ffv1", rate=24, options={"level": "3", "g": "1"})
        stream.width = stream.height = size
        stream.pix_fmt = "gray16le"
        frame = av.VideoFrame.from_ndarray(np.zeros((size, size), dtype=np.uint16), format="gray16le")
        frame.pts, frame.time_base = 0, Fraction(1, 24)
        encoded = [bytes(p) for p in stream.encode(frame)] + [bytes(p) for p in stream.encode(None)]
        for t in range(frames):
            packet = av.Packet(encoded[0])
            packet.pts = packet.dts = t
            packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, 24), stream, True
            out.mux(packet)
    return path


def test_a_stored_depth_is_checked_before_a_frame_is_decoded(tmp_path: Path) -> None:
    """100 flat 4096x4096 frames tagged for an 8-frame 96x64 segment: refused from the stream's
    header, with no frame decoded (the reader before this decoded 9 of them: 300 MB)."""
    tag = {"version": 1, "low": 0.0, "high": 1.0, "frames": 8, "source_width": 96, "source_height": 64}
    bomb = depth_bomb(tmp_path / "bomb.mkv", 100, 4096, tag)
    assert bomb.stat().st_size < 8_000_000  # 100 frames of 50 KB; 3.4 GB decoded
    with (
        PeakGrowth() as growth,
        pytest.raises(DepthMismatchError, match="4096x4096; the depth stage makes 128x64"),
    ):
        read_depth(bomb, DepthShape(8, 96, 64, 128, 64))
    assert growth.mb < 32, f"resident memory rose by {growth.mb:.0f} MB while refusing it"


def test_a_flat_depth_is_stored_too(tmp_path: Path) -> None:
    write_depth(tmp_path / "d.mkv", torch.full((2, 1, 8, 8), 0.25), fps=Fraction(24), source_width=8,
                source_height=8)  # fmt: skip
    stored = read_depth(tmp_path / "d.mkv", DepthShape(2, 8, 8, 8, 8))
    assert torch.equal(stored.depth, torch.full((2, 1, 8, 8), 0.25))


def test_damaged_or_foreign_depth_files_are_refused(tmp_path: Path) -> None:
    write_depth(
        tmp_path / "d.mkv", torch.rand(6, 1, 32, 32), fps=Fraction(24), source_width=32, source_height=32
    )
    whole = (tmp_path / "d.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "text.mkv").write_bytes(b"not a depth file at all")
    video = make_video(tmp_path / "video.mkv", scene_frames(3, 32, 32), codec="ffv1", pix_fmt="bgr0")
    for name, message in [("cut.mkv", "frames|damaged"), ("text.mkv", "not a readable depth file"),
                          ("video.mkv", "tag")]:  # fmt: skip
        with pytest.raises(InvalidDepthError, match=message):
            read_depth(tmp_path / name, DepthShape(6, 32, 32, 32, 32))
    assert video.exists()


def test_the_summary_holds_the_statistics_and_thumbnails() -> None:
    depth = torch.linspace(0, 1, 4 * 72 * 128).reshape(4, 1, 72, 128)
    rgb = np.zeros((72, 128, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    summary = depth_summary(depth, rgb, rgb)
    stats = summary["stats"]
    assert stats["min"] == 0.0 and stats["max"] == 1.0
    assert stats["p1"] == pytest.approx(0.01, abs=2e-3) and stats["p99"] == pytest.approx(0.99, abs=2e-3)
    thumbs = summary["thumbnails"]
    assert np.shape(thumbs["depth_first"]) == (36, 64) and np.shape(thumbs["colour_last"]) == (18, 32, 3)
    assert thumbs["colour_first"][0][0] == [200, 0, 0]
    # area averages of the first and last frames
    assert np.mean(thumbs["depth_first"]) == pytest.approx(float(depth[0].mean()), rel=1e-5)
    assert np.mean(thumbs["depth_last"]) == pytest.approx(float(depth[-1].mean()), rel=1e-5)


# --- the alignment maths ------------------------------------------------------------------------


def test_the_trimmed_fit_ignores_outliers() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (36, 64))
    y = 1.7 * x - 0.3
    y[:5] = rng.uniform(-5, 5, (5, 64))  # 14 % of the pixels are nonsense (a moving edge)
    scale, shift, residual = fit_affine(x, y)
    assert scale == pytest.approx(1.7, abs=1e-9) and shift == pytest.approx(-0.3, abs=1e-9)
    assert residual < 1e-9
    plain = np.polyfit(x.ravel(), y.ravel(), 1)
    assert abs(plain[0] - 1.7) > 0.05  # an untrimmed fit would be off


def _summary(depth: np.ndarray, colour: int = 100, p: tuple[float, float] | None = None) -> dict:
    """A depth task's answer for a segment whose first and last frames are ``depth``."""
    rgb = np.full((18, 32, 3), colour).tolist()
    lo, hi = p if p is not None else (float(depth.min()), float(depth.max()))
    return {
        "stats": {"min": float(depth.min()), "max": float(depth.max()), "p1": lo, "p99": hi},
        "thumbnails": {"depth_first": depth.tolist(), "depth_last": depth.tolist(), "colour_first": rgb,
                       "colour_last": rgb},
    }  # fmt: skip


def test_maps_chain_from_the_middle_segment_and_undo_each_distortion() -> None:
    truth = np.random.default_rng(0).uniform(0.2, 0.8, (36, 64))
    distortions = [(0.6, 0.1), (1.4, -0.4), (1.0, 0.0), (0.8, 0.3), (1.6, 0.05)]
    result = align([_summary(a * truth + b) for a, b in distortions])
    assert [s.reference for s in result.segments if s] == [False, False, True, False, False]
    for (a, b), seg in zip(distortions, result.segments, strict=True):
        assert seg is not None and seg.shot == 0
        # aligned = scale * (a t + b) + shift must be the reference's own raw depth, 1.0 t + 0.0
        assert seg.scale * a == pytest.approx(1.0) and seg.scale * b + seg.shift == pytest.approx(
            0.0, abs=1e-9
        )
    for seg in result.segments:  # one range: the truth's, in the reference's (undistorted) units
        assert seg is not None
        assert (seg.low, seg.high) == (pytest.approx(truth.min()), pytest.approx(truth.max()))


def test_extrapolation_cancels_a_dolly_between_the_boundary_frames() -> None:
    """The whole scene moves in depth at constant speed: plain adjacent frames take that motion
    for the clip ambiguity; extrapolating each side one frame does not."""
    base, v = np.random.default_rng(2).uniform(0.2, 0.7, (36, 64)), 0.01
    (a1, b1), (a2, b2) = (1.2, 0.1), (0.7, -0.2)

    def thumbs(frames: list[np.ndarray], a: float, b: float) -> dict:
        d = [(a * f + b).tolist() for f in frames]
        rgb = np.full((18, 32, 3), 50).tolist()
        return {"depth_first": d[0], "depth_second": d[1], "depth_second_last": d[-2], "depth_last": d[-1],
                "colour_first": rgb, "colour_last": rgb}  # fmt: skip

    stats = {"min": 0.0, "max": 1.0, "p1": 0.0, "p99": 1.0}
    before = {"stats": stats, "thumbnails": thumbs([base + v * t for t in range(4)], a1, b1)}  # frames 0-3
    after = {"stats": stats, "thumbnails": thumbs([base + v * t for t in range(4, 8)], a2, b2)}  # frames 4-7
    for extrapolate, tolerance in ((True, 1e-9), (False, None)):
        result = align([before, after], extrapolate=extrapolate)
        first, second = result.segments
        assert first is not None and second is not None
        # The same true depth t must map to the same aligned value from both segments.
        t = np.array([0.2, 0.6])
        gap = np.abs(
            (first.scale * (a1 * t + b1) + first.shift) - (second.scale * (a2 * t + b2) + second.shift)
        )
        if tolerance is not None:
            assert gap.max() < tolerance
        else:
            assert gap.max() > 0.5 * a1 * v  # about one frame of motion, taken for the ambiguity


def test_cuts_and_missing_segments_split_the_chain() -> None:
    rng = np.random.default_rng(1)
    shot_a, shot_b = rng.uniform(0, 1, (36, 64)), rng.uniform(0, 1, (36, 64))
    summaries = [_summary(shot_a), _summary(shot_a * 2), _summary(shot_b, colour=220), None, _summary(shot_b)]
    result = align(summaries)
    b0, b1, b2, b3 = result.boundaries
    assert b0 is not None and not b0.cut
    assert b1 is not None and b1.cut and "colour change" in b1.reason
    assert b2 is None and b3 is None
    assert [s.shot if s else None for s in result.segments] == [0, 0, 1, None, 2]
    assert "CUT" in result.table() and "(no depth: failed)" in result.table()
    with pytest.raises(ValueError, match="no depth"):
        result.request_fields(3)


def test_the_robust_range_comes_from_the_percentiles() -> None:
    t = np.linspace(0, 1, 36 * 64).reshape(36, 64)
    robust = align([_summary(t, p=(0.1, 0.9))], robust=True).request_fields(0)
    plain = align([_summary(t, p=(0.1, 0.9))], robust=False).request_fields(0)
    assert robust["depth_range"] == [0.1, 0.9] and plain["depth_range"] == [0.0, 1.0]


# --- frame ranges and stitching ---------------------------------------------------------------


def test_frame_ranges_decode_exactly_those_frames(tmp_path: Path) -> None:
    frames = scene_frames(20, 32, 24)
    path = make_video(tmp_path / "v.mkv", frames, codec="ffv1", pix_fmt="bgr0")
    got = np.concatenate(list(iter_frames(path, 4, start=7, count=6)))
    assert np.array_equal(got, frames[7:13])
    with pytest.raises(VideoDecodeError, match="ended after 20 frames"):
        list(iter_frames(path, 4, start=15, count=6))
    segments = cut_segments(path, 0.25)  # 6 frames at 24 fps; the 2-frame tail joins the last
    assert [(s.start, s.count) for s in segments] == [(0, 6), (6, 6), (12, 8)]


def test_stitching_copies_the_segments_and_the_source_audio(tmp_path: Path) -> None:
    source = make_video(tmp_path / "src.mp4", scene_frames(30, 64, 48), fps=24, audio_codec="aac")
    from stereocrafter.video_io import VideoWriter

    parts = []
    for i, n in enumerate((10, 12, 8)):
        with VideoWriter(tmp_path / f"p{i}.mp4", fps=24, width=64, height=48) as writer:
            writer.write(scene_frames(n, 64, 48, seed=i))
        parts.append(tmp_path / f"p{i}.mp4")
    result = stitch(parts, tmp_path / "all.mp4", audio_from=source)
    info = probe(tmp_path / "all.mp4")
    assert result.frames == info.num_frames == 30 and result.segment_frames == [10, 12, 8]
    assert result.audio == "aac copied" and info.has_audio
    assert audio_duration(tmp_path / "all.mp4") == pytest.approx(30 / 24, abs=0.05)
    with av.open(str(tmp_path / "all.mp4")) as container:  # timestamps run on across the joins
        pts = sorted(p.pts for p in container.demux(container.streams.video[0]) if p.pts is not None)
    assert len(set(np.diff(pts))) == 1
    with VideoWriter(tmp_path / "other.mp4", fps=24, width=32, height=48) as writer:
        writer.write(scene_frames(4, 32, 48))
    with pytest.raises(VideoDecodeError, match="differs from the first segment"):
        stitch([parts[0], tmp_path / "other.mp4"], tmp_path / "bad.mp4")
    assert not (tmp_path / "bad.mp4").exists()


# Source audio x output container: what stitching does (the rule of ``video_io.audio_plan``).
AUDIO_CODECS = {"aac": "aac", "mp3": "libmp3lame", "opus": "libopus", "flac": "flac", "pcm": "pcm_s16le"}
TRANSCODED = {(".mp4", "pcm"), (".m4v", "pcm"), (".mov", "opus"), (".mov", "flac")}


@pytest.fixture(scope="module")
def stitch_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    from stereocrafter.video_io import VideoWriter

    folder = tmp_path_factory.mktemp("stitch")
    parts = []
    for i, n in enumerate((10, 14)):  # 24 frames at 24 fps: one second
        with VideoWriter(folder / f"part{i}.mp4", fps=24, width=64, height=48) as writer:
            writer.write(scene_frames(n, 64, 48, seed=i))
        parts.append(folder / f"part{i}.mp4")
    return folder, parts


@pytest.mark.parametrize("suffix", [".mp4", ".m4v", ".mov", ".mkv"])
@pytest.mark.parametrize("audio", [*AUDIO_CODECS, None])
def test_stitching_keeps_every_source_audio_in_every_container(
    stitch_parts: tuple[Path, list[Path]], suffix: str, audio: str | None
) -> None:
    """Copied where the container carries the codec, transcoded to AAC where it does not (the
    .m4v output once picked the "ipod" muxer and failed; MP3 and PCM were dropped): every output
    has the segments' frames and an audio stream as long as the video, within one audio frame."""
    folder, parts = stitch_parts
    source = folder / f"source-{audio}.mkv"
    if not source.exists():
        codec = AUDIO_CODECS[audio] if audio else None
        make_video(source, scene_frames(24, 64, 48), fps=24, audio_codec=codec)
    out = folder / f"out-{audio}{suffix}"
    planned = check_stitchable(out, source)
    result = stitch(parts, out, audio_from=source)
    assert result.audio == planned and result.dropped == []
    info = probe(out)
    assert result.frames == info.num_frames == 24 and not list(folder.glob(".*partial*"))
    if audio is None:
        assert not info.has_audio and result.audio == "none: the source has no audio"
        return
    transcoded = (suffix, audio) in TRANSCODED
    assert result.audio == (f"{'pcm_s16le' if audio == 'pcm' else audio} "
                            + ("transcoded to AAC" if transcoded else "copied"))  # fmt: skip
    with av.open(str(out)) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.codec.canonical_name == ("aac" if transcoded else result.audio.split()[0])
        frame = max(float(p.duration * p.time_base) for p in container.demux(stream) if p.duration)
    assert audio_duration(out) == pytest.approx(info.num_frames / 24, abs=frame), (frame, audio_duration(out))


# --- the whole workflow on a scene whose depth is known ----------------------------------------


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


def test_aligned_segments_keep_the_disparity_continuous_across_boundaries(
    known_scene: Path, inpainting_pipeline, tmp_path: Path
) -> None:
    depth_stage = KnownDepth(seed=5)
    pipeline = StereoPipeline(
        depth_stage, inpainting_pipeline, StereoConfig(max_disp=MAX_DISP, inpaint_steps=1)
    )
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
    from stereocrafter.long import convert_long

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
    import stereocrafter.long
    from stereocrafter.cli import main
    from stereocrafter.errors import StitchError

    source = make_video(tmp_path / "v.mp4", scene_frames(6, 32, 32), fps=12, audio_codec="aac")
    folders: list[Path] = []

    def fails_at_the_join(pipeline: object, src: Path, out: Path, *, workdir: Path, **_: object) -> None:
        folders.append(workdir)
        (workdir / "segment-0000.mp4").write_bytes(b"converted")
        raise StitchError(f"stitching the converted segments failed (a test); they are kept in {workdir}")

    monkeypatch.setattr(stereocrafter.long, "convert_long", fails_at_the_join)
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


@pytest.mark.parametrize("option", [pytest.param("--plan", marks=pytest.mark.slow), None])
def test_convert_long_on_the_command_line(tiny_weights: Path, tmp_path: Path, option: str | None) -> None:
    """The CLI on tiny weights: cut, depth, align, stereo, stitch, with the source's audio."""
    source = make_video(tmp_path / "long.mp4", scene_frames(36, 64, 48), fps=12, audio_codec="aac")
    out = tmp_path / "long_sbs.mp4"
    command = [sys.executable, "-m", "stereocrafter.cli", "convert-long", str(source), str(out),
               "--mode", "sbs", "--segment-seconds", "1", "--weights-dir", str(tiny_weights),
               "--device", "cpu", "-q"]  # fmt: skip
    env = {**os.environ, "STEREOCRAFTER_DEPTH_STEPS": "1", "STEREOCRAFTER_INPAINT_STEPS": "1"}
    if option:
        command.append(option)
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    assert "shot" in run.stdout and "reference" in run.stdout  # the alignment table
    if option == "--plan":
        assert not out.exists()
        return
    info = probe(out)
    assert (info.num_frames, info.width, info.height, info.fps) == (36, 128, 48, Fraction(12))
    assert info.has_audio and audio_duration(out) == pytest.approx(3.0, abs=0.05)
    assert "3 segments" in run.stdout and "36 frames (12 + 12 + 12), audio: aac copied" in run.stdout


def test_convert_long_refuses_bad_options_before_loading(tmp_path: Path) -> None:
    source = make_video(tmp_path / "v.mp4", scene_frames(6, 32, 32), fps=12)
    cases = [
        (["--segment-seconds", "0"], "--segment-seconds must be > 0"),
        (["--plan", "--no-align"], "cannot be combined"),
        (["--workdir", str(tmp_path / "nowhere")], "is not a folder"),
    ]
    for args, message in cases:
        command = [
            sys.executable,
            "-m",
            "stereocrafter.cli",
            "convert-long",
            str(source),
            str(tmp_path / "o.mp4"),
        ]
        run = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)
        assert run.returncode == 2 and len(run.stderr.strip().splitlines()) == 1, run.stderr
        assert message in run.stderr, run.stderr


def test_a_boundary_with_exactly_one_flat_side_is_a_cut() -> None:
    """A textured shot into a flat frame (a fade, a title card): the correlation of a flat map
    with anything used to be 1.0, so the two were chained; two flat sides still agree."""
    textured = np.random.default_rng(4).uniform(0.2, 0.8, (36, 64))
    flat = np.full((36, 64), 0.5)
    for before, after in ((textured, flat), (flat, textured)):
        boundary = align([_summary(before), _summary(after)]).boundaries[0]
        assert boundary is not None and boundary.cut and "one side is flat" in boundary.reason
        assert boundary.correlation == 0.0
    both = align([_summary(flat), _summary(flat + 0.1)]).boundaries[0]
    assert both is not None and not both.cut and both.correlation == 1.0


@pytest.mark.parametrize("field", ["depth_last", "depth_first", "colour_first"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_thumbnails_are_refused_with_the_segment_named(field: str, bad: float) -> None:
    truth = np.random.default_rng(5).uniform(0.2, 0.8, (36, 64))
    broken = _summary(truth)
    values = np.asarray(broken["thumbnails"][field], dtype=np.float64)
    values.flat[7] = bad
    broken["thumbnails"][field] = values.tolist()
    with pytest.raises(ValueError, match=f"segment 1: its {field} thumbnail holds non-finite values"):
        align([_summary(truth), broken])
    broken["thumbnails"][field] = np.asarray(_summary(truth)["thumbnails"][field]).tolist()
    broken["stats"]["p99"] = float("nan")
    with pytest.raises(ValueError, match=r"segment 1: its stats\.p99 is not a finite number"):
        align([_summary(truth), broken])
