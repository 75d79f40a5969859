"""``stereo.grid``: the reference's 2x2 debug grid of a conversion (left view, inferno depth,
occlusion mask, warped right view), written beside the output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stereocrafter.jobs.local import convert_file
from stereocrafter.media.video_io import probe
from stereocrafter.pipeline.run import StereoPipeline
from tests.support.video import read_all


def test_debug_grid(stereo: StereoPipeline, clip_with_audio: Path, tmp_path: Path) -> None:
    grid = tmp_path / "grid.mp4"
    convert_file(stereo, clip_with_audio, tmp_path / "o.mp4", mode="anaglyph", grid_path=grid)
    info = probe(grid)
    assert (info.width, info.height, info.num_frames) == (192, 128, 26)
    frames = read_all(grid).astype(float)
    source = read_all(clip_with_audio).astype(float)
    assert (
        10 * np.log10(255.0**2 / np.mean((frames[:, :64, :96] - source) ** 2)) > 35.0
    )  # top-left: left view
    mask, depth = frames[:, 64:, :96], frames[:, :64, 96:]
    # bottom-left: a grey-scale mask (4:2:0 chroma smears its noisy edges a little); top-right:
    # the inferno colouring, far from grey.
    assert np.mean(np.abs(mask[..., 0] - mask[..., 1])) < 15
    assert np.mean(np.abs(depth[..., 0] - depth[..., 2])) > 40


def test_the_grid_s_quadrants() -> None:
    import torch

    from stereocrafter.stereo.grid import debug_grid

    left = torch.full((2, 3, 4, 6), 0.5)
    warped = torch.full((2, 3, 4, 6), 1.0)
    occlusion = torch.zeros(2, 1, 4, 6)
    grid = debug_grid(left, torch.zeros(2, 1, 4, 6), occlusion, warped)
    assert grid.shape == (2, 8, 12, 3) and grid.dtype == np.uint8
    assert (grid[:, :4, :6] == 128).all() and (grid[:, 4:, :6] == 0).all() and (grid[:, 4:, 6:] == 255).all()
