"""RGB -> YUV 4:2:0 on the device for NVENC (``media.yuv``): within a code value or two of the
writer's swscale conversion, written by ``VideoWriter.write_yuv`` to a file that decodes like the
RGB path's, and asked for by a sink that says it takes the planes."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.video_io import iter_frames
from stereocrafter.media.yuv import rgb_to_yuv420p
from stereocrafter.testing.media import scene_frames


def _swscale(writer: VideoWriter, rgb: np.ndarray) -> np.ndarray:
    graph = writer._yuv_graph()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame.pts = 0
    graph.push(frame)
    return graph.pull().to_ndarray()


def test_the_planes_are_within_a_code_value_of_swscale(tmp_path: Path) -> None:
    frames = scene_frames(4, 96, 64)  # (t, h, w, 3) uint8, smooth shapes and texture
    ours = rgb_to_yuv420p(torch.from_numpy(frames)).numpy()
    assert ours.shape == (4, 96, 96) and ours.dtype == np.uint8
    writer = VideoWriter(tmp_path / "unused.mp4", fps=24, width=96, height=64)
    for i in range(4):
        diff = np.abs(ours[i].astype(int) - _swscale(writer, frames[i]).astype(int))
        luma, chroma = diff[:64], diff[64:]
        assert luma.max() <= 1 and luma.mean() < 0.05
        assert chroma.mean() < 0.5 and chroma.max() <= 12  # filters differ at sharp colour edges


def test_odd_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="even size"):
        rgb_to_yuv420p(torch.zeros(1, 5, 8, 3, dtype=torch.uint8))


def test_write_yuv_encodes_what_write_would(tmp_path: Path) -> None:
    frames = scene_frames(6, 96, 64)
    with VideoWriter(tmp_path / "rgb.mp4", fps=24, width=96, height=64, crf=0) as writer:
        writer.write(frames)
    with VideoWriter(tmp_path / "yuv.mp4", fps=24, width=96, height=64, crf=0) as writer:
        assert writer.takes_yuv
        writer.write_yuv(rgb_to_yuv420p(torch.from_numpy(frames)).numpy())
        with pytest.raises(ValueError, match="planes must be"):
            writer.write_yuv(frames)
    a = np.concatenate(list(iter_frames(tmp_path / "rgb.mp4", 16))).astype(int)
    b = np.concatenate(list(iter_frames(tmp_path / "yuv.mp4", 16))).astype(int)
    assert a.shape == b.shape == (6, 64, 96, 3)
    assert np.abs(a - b).mean() < 1.0


def test_a_sink_that_takes_planes_gets_them_from_the_pipeline(tiny_weights: Path) -> None:
    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    pipeline = load_stereo_pipeline(tiny_weights, presets=("instant",))
    config = StereoConfig.from_preset("instant", depth_input_size=28)
    frames = scene_frames(4, 96, 64)
    got: list[np.ndarray] = []

    class Planes:
        takes_yuv420p = True

        def __call__(self, item: np.ndarray) -> None:
            got.append(item)

    rgb: list[np.ndarray] = []
    size = {"num_frames": 4, "width": 96, "height": 64, "mode": "sbs", "config": config}
    pipeline.run(lambda: iter([frames]), Planes(), **size)
    pipeline.run(lambda: iter([frames]), rgb.append, **size)
    assert got[0].shape == (4, 96, 192) and got[0].dtype == np.uint8
    assert np.array_equal(got[0], rgb_to_yuv420p(torch.from_numpy(rgb[0])).numpy())


def _clip(tmp_path: Path, frames: np.ndarray, name: str = "in.mp4") -> Path:
    with VideoWriter(
        tmp_path / name, fps=24, width=frames.shape[2], height=frames.shape[1], crf=10
    ) as writer:
        writer.write(frames)
    return tmp_path / name


def test_decoded_planes_convert_on_the_device_within_a_few_codes_of_the_host(tmp_path: Path) -> None:
    from stereocrafter.media.yuv import YuvChunk, yuv420p_to_rgb

    path = _clip(tmp_path, scene_frames(20, 96, 64))
    host = np.concatenate(list(iter_frames(path, 8)))
    chunks = list(iter_frames(path, 8, planes=True))
    assert [len(c) for c in chunks] == [8, 8, 4] and all(isinstance(c, YuvChunk) for c in chunks)
    assert chunks[0].bt709 and not chunks[0].full  # the writer tags BT.709, limited range
    device = torch.cat([yuv420p_to_rgb(c, torch.device("cpu")) for c in chunks])
    ours = (device.permute(0, 2, 3, 1) * 255).round().numpy().astype(int)
    diff = np.abs(ours - host.astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 6


@pytest.mark.parametrize("bt709", [True, False])
@pytest.mark.parametrize("full", [False, True])
def test_each_matrix_and_range_is_swscale_s(bt709: bool, full: bool) -> None:
    """Flat colours (where chroma siting and filters play no part): the matrix and the range alone."""
    from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

    from stereocrafter.media.video_io import _SWS_FLAGS
    from stereocrafter.media.yuv import YuvChunk, yuv420p_to_rgb

    reformatter = VideoReformatter()
    for y, u, v in (
        (16, 128, 128),
        (235, 128, 128),
        (81, 90, 240),
        (145, 54, 34),
        (41, 240, 110),
        (120, 160, 90),
    ):
        plane = np.concatenate([np.full((8, 16), y), np.full((2, 16), u), np.full((2, 16), v)]).astype(
            np.uint8
        )
        ours = yuv420p_to_rgb(YuvChunk(plane[None], bt709, full), torch.device("cpu"))[0, :, 4, 8] * 255
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        theirs = reformatter.reformat(
            frame, format="rgb24", src_colorspace=Colorspace.ITU709 if bt709 else Colorspace.ITU601,
            src_color_range=ColorRange.JPEG if full else ColorRange.MPEG, dst_color_range=ColorRange.JPEG,
            interpolation=_SWS_FLAGS,
        ).to_ndarray()[4, 8]  # fmt: skip
        assert np.abs(ours.round().numpy() - theirs).max() <= 1, (y, u, v, ours, theirs)


def test_a_stream_the_device_cannot_take_is_converted_on_the_host(tmp_path: Path) -> None:
    frames = scene_frames(4, 96, 64)
    with VideoWriter(tmp_path / "444.mkv", fps=24, width=96, height=64, pix_fmt="yuv444p") as writer:
        writer.write(frames)
    (chunk,) = list(iter_frames(tmp_path / "444.mkv", 8, planes=True))
    assert isinstance(chunk, np.ndarray) and chunk.shape == (4, 64, 96, 3)
