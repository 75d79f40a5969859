"""video_io against files made here with real encoders (libx264, libx265, libvpx, ProRes, ...)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from stereocrafter.errors import VideoDecodeError, VideoEncodeError
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.testing.media import make_video, psnr, scene_frames, sine_audio
from tests.support.video import read_all, write

# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("fps", [Fraction(30000, 1001), Fraction(24000, 1001), 24, 25, 60])
def test_round_trip_exact_count_fps_and_quality(tmp_path: Path, fps: Fraction | int) -> None:
    """At x264's medium preset (the 38 dB bar was set there; the default's own bar is below)."""
    frames = scene_frames(30, 160, 96)
    out = write(tmp_path / "out.mp4", frames, fps=fps, preset="medium")
    info = probe(out)
    assert info.num_frames == 30
    assert info.fps == Fraction(fps)
    assert (info.width, info.height) == (160, 96)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.duration == pytest.approx(30 / float(fps), abs=1e-6)
    decoded = read_all(out)
    assert decoded.shape == frames.shape
    assert psnr(decoded, frames) >= 38.0


def test_iter_frames_chunks_are_bounded(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", scene_frames(10, 64, 48))
    sizes = [len(chunk) for chunk in iter_frames(src, chunk_size=4)]
    assert sizes == [4, 4, 2]
    chunk = next(iter_frames(src, chunk_size=3))
    assert chunk.dtype == np.uint8 and chunk.shape == (3, 48, 64, 3)
    with pytest.raises(ValueError, match="chunk_size"):
        next(iter_frames(src, chunk_size=0))


# --- input formats -------------------------------------------------------------------------

CODECS = [
    ("h264.mp4", "libx264", "yuv420p", {}),
    ("hevc10.mp4", "libx265", "yuv420p10le", {"x265-params": "log-level=error"}),
    ("hevc8.mkv", "libx265", "yuv420p", {"x265-params": "log-level=error"}),
    ("vp9.webm", "libvpx-vp9", "yuv420p", {}),
    ("mpeg4.mkv", "mpeg4", "yuv420p", {"b": "4M"}),
    ("prores.mov", "prores_ks", "yuv422p10le", {}),
    ("mjpeg.mov", "mjpeg", "yuvj420p", {}),
]


@pytest.mark.parametrize(("name", "codec", "pix_fmt", "options"), CODECS, ids=[c[0] for c in CODECS])
def test_decodes_common_codecs(tmp_path: Path, name: str, codec: str, pix_fmt: str, options: dict) -> None:
    frames = scene_frames(12, 160, 96, seed=1)
    src = make_video(tmp_path / name, frames, codec=codec, pix_fmt=pix_fmt, options=options, fps=25)
    info = probe(src)
    assert (info.width, info.height, info.num_frames, info.fps) == (160, 96, 12, Fraction(25))
    assert info.pix_fmt == pix_fmt
    decoded = read_all(src, chunk_size=5)
    assert decoded.shape == frames.shape
    # The fixtures' own encoders are lossy (and subsample chroma); anything broken (wrong matrix,
    # swapped channels, wrong frame order) lands far below this.
    assert psnr(decoded, frames) >= 28.0


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation_metadata_is_applied(tmp_path: Path, rotation: int) -> None:
    frames = scene_frames(4, 96, 64)
    frames[:, :12, :16] = (255, 0, 0)  # red marker at the stored top-left
    src = make_video(tmp_path / "rot.mp4", frames, rotation=rotation)
    info = probe(src)
    assert info.rotation == rotation
    decoded = read_all(src)
    expected = np.rot90(frames, k=rotation // 90, axes=(1, 2))  # counter-clockwise, as ffmpeg
    assert (info.height, info.width) == expected.shape[1:3] == decoded.shape[1:3]
    assert psnr(decoded, expected) >= 28.0  # lossy fixture; a wrong turn scores far lower
    # Where the marker went: 90 CCW -> bottom-left, 180 -> bottom-right, 270 -> top-right.
    corner = {90: decoded[:, -4:, :4], 180: decoded[:, -4:, -4:], 270: decoded[:, :4, -4:]}[rotation]
    assert corner[..., 0].min() > 200 and corner[..., 1].max() < 60


def test_odd_sizes(tmp_path: Path) -> None:
    frames = scene_frames(6, 161, 91)
    src = make_video(tmp_path / "odd.mkv", frames, pix_fmt="yuv444p")
    assert (probe(src).width, probe(src).height) == (161, 91)
    assert read_all(src).shape == frames.shape

    with VideoWriter(tmp_path / "odd.mp4", fps=24, width=161, height=91, preset="medium") as writer:
        writer.write(frames)
        assert (writer.encoded_width, writer.encoded_height) == (162, 92)
    decoded = read_all(tmp_path / "odd.mp4")
    assert decoded.shape == (6, 92, 162, 3)
    assert psnr(decoded[:, :91, :161], frames) >= 38.0
    # The padding repeats the last column/row.
    assert psnr(decoded[:, :91, 161], frames[:, :, 160]) >= 30.0


# --- audio ---------------------------------------------------------------------------------


def _truncate(path: Path, fraction: float) -> Path:
    data = path.read_bytes()
    target = path.with_name("truncated-" + path.name)
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    frames = scene_frames(48, 160, 96)
    plain = make_video(tmp / "plain.mp4", frames)  # moov at the end (no faststart)
    faststart = write(tmp / "faststart.mp4", frames)  # moov first
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    audio_only = tmp / "audio.m4a"
    with av.open(str(audio_only), mode="w") as container:
        stream = container.add_stream("aac", rate=48000, layout="stereo")
        pcm = sine_audio(0.5)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1, order="F"), format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    no_frames = tmp / "no_frames.mkv"  # a video stream that never gets a packet (audio only)
    with av.open(str(no_frames), mode="w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    corrupt = bytearray(faststart.read_bytes())
    rng = np.random.default_rng(0)
    middle = len(corrupt) // 2
    corrupt[middle : middle + 4000] = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    (tmp / "corrupt.mp4").write_bytes(bytes(corrupt))
    return {
        "text": (text, "not a readable media file"),
        "empty": (empty, "not a readable media file"),
        "audio only": (audio_only, "no video stream \\(the file holds audio\\)"),
        "no frames": (no_frames, "no frames|no decodable frames"),
        "truncated, index at the end": (_truncate(plain, 0.6), "not a readable media file"),
        "truncated, index first": (_truncate(faststart, 0.6), "truncated|corrupt"),
        "corrupt middle": (tmp / "corrupt.mp4", "corrupt"),
    }


def test_bad_files_raise_video_decode_error(tmp_path: Path) -> None:
    for case, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(VideoDecodeError, match=message) as caught:
            for _ in iter_frames(path, chunk_size=8):
                pass
        assert caught.value.status == 422, case
        assert path.name in caught.value.message, case
        assert str(tmp_path) not in caught.value.message, "messages name the file, not its directory"
    # probe reads only the head of the file: it rejects what is broken there.
    cases = _bad_files(tmp_path)
    for case in ("text", "empty", "audio only", "no frames", "truncated, index at the end"):
        path, message = cases[case]
        with pytest.raises(VideoDecodeError, match=message):
            probe(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")
    with pytest.raises(FileNotFoundError):
        next(iter_frames(tmp_path / "nope.mp4"))


# --- atomic writes -------------------------------------------------------------------------


def test_bad_frames_and_no_frames(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"

    def open_writer() -> VideoWriter:
        return VideoWriter(target, fps=24, width=64, height=48)

    with pytest.raises(ValueError, match="frames must be"), open_writer() as writer:
        writer.write(np.zeros((2, 48, 65, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"), open_writer() as writer:
        writer.write(np.zeros((2, 48, 64, 3), np.float32))
    with pytest.raises(VideoEncodeError, match="no frames"), open_writer():
        pass
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="suffix"):
        VideoWriter(tmp_path / "out.avi", fps=24, width=64, height=48)
    with pytest.raises(ValueError, match="crf"):
        VideoWriter(target, fps=24, width=64, height=48, crf=60)
