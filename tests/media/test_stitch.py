"""Segments joined into one file (``media.stitch``): frame ranges, stream copy with the source's
audio in every container, and a failed join that keeps the converted segments."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stereocrafter.errors import VideoDecodeError
from stereocrafter.long.local import cut_segments
from stereocrafter.media.stitch import check_stitchable, stitch
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.testing.media import audio_duration, make_video, scene_frames


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
    from stereocrafter.media.encode import VideoWriter

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
    from stereocrafter.media.encode import VideoWriter

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


def test_matroska_segments_stitch_into_matroska_and_into_mp4(tmp_path: Path) -> None:
    """Service outputs written as .mkv, whose reordered first frames carry no decode timestamp (FFmpeg
    refused them with a bare "Invalid argument", errno 22): joined into .mkv and into .mp4, every
    frame as the segments hold it, in order, with the stereo tag; nothing else is left behind."""
    from stereocrafter.media.encode import VideoWriter
    from stereocrafter.media.stereotag import read_layout

    parts = []
    for i in range(3):
        with VideoWriter(tmp_path / f"p{i}.mkv", fps=24, width=64, height=48, stereo="left_right") as writer:
            writer.write(scene_frames(8 + i, 64, 48, seed=i))
        parts.append(tmp_path / f"p{i}.mkv")
    frames = np.concatenate([np.concatenate(list(iter_frames(p, 16))) for p in parts])
    for name in ("film.mkv", "film.mp4"):
        joined = stitch(parts, tmp_path / name)
        assert joined.frames == probe(tmp_path / name).num_frames == 27 and read_layout(tmp_path / name)
        assert np.array_equal(np.concatenate(list(iter_frames(tmp_path / name, 16))), frames)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "film.mkv",
        "film.mp4",
        "p0.mkv",
        "p1.mkv",
        "p2.mkv",
    ]
