"""A segment's raw depth on disk (``media.depthstore``): the 16-bit round trip, the checks made
before any frame is decoded, damaged or foreign files refused, and the summary the alignment uses."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from stereocrafter.errors import DepthMismatchError, InvalidDepthError
from stereocrafter.media.depthstore import DepthShape, depth_summary, read_depth, write_depth
from stereocrafter.testing.media import depth_bomb, make_video, scene_frames
from tests.support.memory import PeakGrowth


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
