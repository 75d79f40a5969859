"""``testing.planes``: the analytic scene of fronto-parallel planes the splatting and report tests use."""

from __future__ import annotations

import torch

from stereocrafter.testing.planes import default_planes, render


def test_the_nearest_plane_wins_and_its_holes_are_where_nothing_lands() -> None:
    scene = render(default_planes(), 64, 160)
    assert scene["left"].shape == (3, 64, 160) and scene["disparity"].shape == (1, 64, 160)
    assert float(scene["disparity"][0, 30, 120]) == 12.4  # inside the near rectangle
    assert float(scene["disparity"][0, 5, 5]) == -6.3  # the background
    holes = scene["holes"]
    assert holes.dtype == torch.bool and 0 < int(holes.sum()) < holes.numel() // 4
    assert torch.all(scene["right"][:, holes[0]] == 0)
