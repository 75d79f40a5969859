"""The stereo layout in the container (``media.stereotag``), read back by ffprobe (a reader nobody
here wrote): ``st3d`` in MP4/MOV, ``StereoMode`` in Matroska, after encoding, after stitching and
after a whole conversion; no tag on an anaglyph; the pictures themselves untouched by the tag."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from stereocrafter.config import StereoConfig
from stereocrafter.errors import VideoDecodeError
from stereocrafter.jobs.context import Job
from stereocrafter.jobs.local import convert_file
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.stereotag import entry_boxes, read_layout, tag_file
from stereocrafter.media.stitch import stitch
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.testing.media import audio_duration, make_video, scene_frames

FFPROBE_TYPES = {"left_right": "side by side", "top_bottom": "top and bottom"}
CONTAINERS = ("mp4", "mov", "mkv")


def ffprobe_stereo(path: Path) -> str | None:
    """The Stereo 3D side data type ffprobe reports for the first video stream, None without."""
    exe = shutil.which("ffprobe")
    if exe is None:  # `make test` installs it (Debian's ffmpeg); CI must never skip this
        if os.environ.get("CI"):
            pytest.fail("ffprobe is missing: `make tools` installs it")
        pytest.skip("ffprobe is not installed (make tools)")
    args = [exe, "-v", "error", "-select_streams", "v:0", "-show_streams", "-of", "json", str(path)]
    stream = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)["streams"][0]
    sides = stream.get("side_data_list", [])
    kinds = [d.get("type") for d in sides if d.get("side_data_type") == "Stereo 3D"]
    assert len(kinds) <= 1, kinds
    return kinds[0] if kinds else None


def _write(path: Path, frames: np.ndarray, stereo: str | None, audio: Path | None = None) -> Path:
    with VideoWriter(path, fps=24, width=frames.shape[2], height=frames.shape[1], stereo=stereo,
                     audio_source=audio) as writer:  # fmt: skip
        writer.write(frames)
        box = "StereoMode" if path.suffix == ".mkv" else "st3d"
        assert writer.stereo_tag == (None if stereo is None else f"{box} {stereo}")
    return path


def _decoded(path: Path) -> np.ndarray:
    return np.concatenate(list(iter_frames(path, 8)))


def _packets(path: Path) -> list[tuple[str, int | None, bytes]]:
    with av.open(str(path)) as container:
        return [(p.stream.type, p.pts, bytes(p)) for p in container.demux() if p.size]


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("layout", ["left_right", "top_bottom", None])
def test_every_container_carries_the_layout(tmp_path: Path, container: str, layout: str | None) -> None:
    source = make_video(tmp_path / "src.mp4", scene_frames(12, 64, 32), fps=24, audio_codec="aac")
    tagged = _write(tmp_path / f"tagged.{container}", scene_frames(12, 64, 32, seed=3), layout, source)
    assert ffprobe_stereo(tagged) == FFPROBE_TYPES.get(str(layout))
    assert read_layout(tagged) == layout
    assert probe(tagged).num_frames == 12 and audio_duration(tagged) > 0


@pytest.mark.parametrize("faststart", [True, False], ids=["moov-first", "moov-last"])
@pytest.mark.parametrize("container", ["mp4", "mov"])
def test_the_tag_moves_no_sample(tmp_path: Path, container: str, faststart: bool) -> None:
    """Every video and audio packet decodes from the tagged file as from the file before: the
    chunk offsets of both tracks moved with a moov that grew in front of the samples (faststart)."""
    source = make_video(tmp_path / "src.mp4", scene_frames(12, 64, 32), fps=24, audio_codec="aac")
    plain = tmp_path / f"plain.{container}"
    if faststart:
        _write(plain, scene_frames(12, 64, 32, seed=3), None, source)
    else:
        make_video(plain, scene_frames(12, 64, 32, seed=3), fps=24, audio_codec="aac")
    tagged = tmp_path / f"tagged.{container}"
    shutil.copy(plain, tagged)
    tag_file(tagged, "left_right")
    assert tagged.stat().st_size == plain.stat().st_size + 13
    assert _packets(tagged) == _packets(plain) and len(_packets(plain)) > 12
    assert ffprobe_stereo(tagged) == "side by side"
    boxes = entry_boxes(tagged)  # after the codec's boxes, before the optional tail (the RFC's place)
    assert boxes.count("st3d") == 1 and boxes.index("st3d") > boxes.index("avcC")
    assert all(boxes.index("st3d") < boxes.index(tail) for tail in ("pasp", "btrt") if tail in boxes)


@pytest.mark.parametrize("output", CONTAINERS)
@pytest.mark.parametrize("segments", ["mp4", "mov"])
def test_stitching_keeps_the_segments_layout(tmp_path: Path, segments: str, output: str) -> None:
    """A stitched MOV gets one tag: FFmpeg 8 would add Apple's ``vexu`` from the copied side data,
    and a file with both is refused by its demuxer."""
    parts = [_write(tmp_path / f"p{i}.{segments}", scene_frames(6, 48, 32, seed=i), "top_bottom")
             for i in range(3)]  # fmt: skip
    result = stitch(parts, tmp_path / f"all.{output}")
    assert result.frames == 18 and result.stereo_tag is not None and result.stereo_tag.endswith("top_bottom")
    assert ffprobe_stereo(result.output) == "top and bottom"
    assert read_layout(result.output) == "top_bottom"
    assert np.array_equal(_decoded(result.output), np.concatenate([_decoded(p) for p in parts]))


def test_stitching_refuses_segments_of_different_layouts(tmp_path: Path) -> None:
    frames = scene_frames(6, 48, 32)
    parts = [_write(tmp_path / "a.mp4", frames, "left_right"), _write(tmp_path / "b.mp4", frames, None)]
    with pytest.raises(VideoDecodeError, match="different stereo layouts"):
        stitch(parts, tmp_path / "all.mp4")
    assert not (tmp_path / "all.mp4").exists()


def test_a_second_tag_replaces_the_first_in_place(tmp_path: Path) -> None:
    path = _write(tmp_path / "v.mp4", scene_frames(6, 48, 32), "left_right")
    size = path.stat().st_size
    tag_file(path, "top_bottom")
    assert path.stat().st_size == size and ffprobe_stereo(path) == "top and bottom"
    with pytest.raises(ValueError, match="no layout"):
        tag_file(path, "mono")


def test_a_file_the_box_reader_cannot_follow_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x30ftypisom" + b"\x00" * 8)  # a box that claims more than the file
    with pytest.raises(ValueError, match=r"bad\.mp4: a malformed b'ftyp' box at byte 0"):
        tag_file(bad, "left_right")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"\x00\x00\x00\x10ftypisom\x00\x00\x00\x00")
    with pytest.raises(ValueError, match="0 moov boxes"):
        tag_file(empty, "left_right")
    assert read_layout(empty) is None


@pytest.fixture(scope="module")
def instant(tiny_weights: Path):  # type: ignore[no-untyped-def]
    return load_stereo_pipeline(tiny_weights, presets=("instant",))


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize(
    ("mode", "expected"),
    [("sbs", "side by side"), ("half-sbs", "side by side"), ("top-bottom", "top and bottom"),
     ("anaglyph", None)],
)  # fmt: skip
def test_a_conversion_tags_its_layout(
    instant, tmp_path: Path, container: str, mode: str, expected: str | None
) -> None:  # type: ignore[no-untyped-def]
    source = make_video(tmp_path / "left.mp4", scene_frames(6, 48, 32), fps=24)
    job = Job(config=StereoConfig.from_preset("instant", depth_input_size=28))
    result = convert_file(instant, source, tmp_path / f"out.{container}", mode=mode, job=job)
    assert ffprobe_stereo(result.output) == expected
    assert (result.stereo_tag is None) == (expected is None)
