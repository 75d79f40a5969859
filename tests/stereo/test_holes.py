"""The hole list's run sides and the memory's running scans, against their whole-plane definitions
(``nearest_known``'s running extrema, ``cummax`` and ``cummin``)."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.stereo.holes import hole_pixels, latest_seen, nearest_known, next_seen, run_sides


def test_nearest_known_on_a_row() -> None:
    known = torch.tensor([False, True, False, False, True, False])
    before, after = nearest_known(known)
    assert before.tolist() == [-1, 1, 1, 1, 4, 4]
    assert after.tolist() == [1, 1, 4, 4, 4, 6]


@pytest.mark.parametrize("seed", range(6))
def test_the_sides_of_each_run_are_the_nearest_known_pixels_of_its_row(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    t, h, w = 1 + seed % 3, 5, 4 + 3 * seed
    holes = torch.rand(t, 1, h, w, generator=g) < 0.2 + 0.12 * seed
    holes[0, 0, 0] = True  # a whole row: no side at all
    holes[-1, 0, -1, -2:] = True  # a run at the right border, and one at the left
    holes[-1, 0, 1, :2] = True
    at = hole_pixels(holes)
    left, right = run_sides(at)
    plane_left, plane_right = nearest_known(~holes)
    assert torch.equal(left, plane_left.reshape(-1)[at.p].long())
    assert torch.equal(right, plane_right.reshape(-1)[at.p].long())


def test_run_sides_of_no_holes() -> None:
    left, right = run_sides(hole_pixels(torch.zeros(2, 1, 3, 4, dtype=torch.bool)))
    assert left.numel() == right.numel() == 0


def _canvas(t: int, seed: int) -> torch.Tensor:
    """t + 1 planes of stamps: plane j holds id j where it saw a pixel, else -1."""
    g = torch.Generator().manual_seed(seed)
    seen = torch.rand(t + 1, 1, 4, 9, generator=g) < 0.3
    ids = torch.arange(t + 1, dtype=torch.int16).view(t + 1, 1, 1, 1)
    return torch.where(seen, ids, -1)


@pytest.mark.parametrize("t", [1, 2, 5, 16])
def test_the_scans_are_the_running_extrema(t: int) -> None:
    canvas = _canvas(t, t)
    assert torch.equal(latest_seen(canvas, t), canvas[:t].cummax(0).values)
    if t > 1:
        later = torch.where(canvas[2:] >= 0, canvas[2:], t + 1).flip(0).cummin(0).values.flip(0)
        assert torch.equal(next_seen(canvas, t), later)
