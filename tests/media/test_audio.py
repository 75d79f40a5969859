"""``media.audio``: the source's audio kept (copied or transcoded to what the container takes),
interleaved with the video, a silent source silent."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from stereocrafter.media.video_io import probe
from stereocrafter.testing.media import audio_duration, make_video, scene_frames
from tests.support.video import read_all, write

# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "audio_codec", "expected_codec"),
    [
        ("aac.mp4", "aac", "aac"),  # copied
        ("opus.webm", "libopus", "opus"),  # copied (Opus in MP4 is standard)
        ("pcm.mkv", "pcm_s16le", "aac"),  # transcoded
        ("mp2.mkv", "mp2", "aac"),  # transcoded (MP4 could hold it, players mostly cannot)
        ("ac3.mkv", "ac3", "ac3"),  # copied
    ],
)
def test_audio_is_kept(tmp_path: Path, name: str, audio_codec: str, expected_codec: str) -> None:
    if audio_codec not in av.codecs_available:
        pytest.skip(f"{audio_codec} not in this PyAV build")
    frames = scene_frames(36, 96, 64)
    codec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
    fps = Fraction(30000, 1001)
    src = make_video(tmp_path / name, frames, codec=codec, audio_codec=audio_codec, fps=fps)
    out = write(tmp_path / "out.mp4", read_all(src), fps=fps, audio_source=src)
    info = probe(out)
    assert info.has_audio and info.num_frames == 36
    with av.open(str(out)) as container:
        assert [s.codec_context.name for s in container.streams.audio] == [expected_codec]
    frame_time = 1 / float(fps)
    assert audio_duration(out) == pytest.approx(audio_duration(src), abs=frame_time)
    assert audio_duration(out) == pytest.approx(36 / float(fps), abs=frame_time)


def test_audio_is_interleaved_with_video(tmp_path: Path) -> None:
    frames = scene_frames(48, 96, 64)
    src = make_video(tmp_path / "in.mp4", frames, audio_codec="aac")
    out = write(tmp_path / "out.mp4", frames, audio_source=src)
    with av.open(str(out)) as container:
        kinds = [packet.stream.type for packet in container.demux() if packet.size > 0]
    # In file order the audio is spread through the video, not appended after it.
    first_audio, last_video = kinds.index("audio"), len(kinds) - 1 - kinds[::-1].index("video")
    assert first_audio < last_video / 2


def test_silent_source_gives_silent_output(tmp_path: Path) -> None:
    src = make_video(tmp_path / "in.mp4", scene_frames(6, 64, 48))
    out = write(tmp_path / "out.mp4", scene_frames(6, 64, 48), audio_source=src)
    assert not probe(out).has_audio


# --- bad input -----------------------------------------------------------------------------


def test_the_output_container_comes_from_the_suffix() -> None:
    from stereocrafter.media.audio import output_format

    assert output_format("film_sbs.mkv") == "matroska" and output_format("a.MP4") == "mp4"
    with pytest.raises(ValueError, match=r"unsupported output suffix '\.avi'"):
        output_format("a.avi")
