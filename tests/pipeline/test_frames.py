"""``pipeline.frames``: increasing, overlapping index ranges served from a one-pass iterator."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.pipeline.frames import SequentialFrames


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
