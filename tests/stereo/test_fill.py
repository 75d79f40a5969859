"""The weight-free fill on scenes whose true right view is known everywhere
(``testing.fillscenes``): which surface each hole pixel comes from, the mirror, the column
fallback, the memory of earlier frames (still background, pan, cut), and determinism."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.stereo import fill
from stereocrafter.stereo.holes import nearest_known
from stereocrafter.stereo.splatting import forward_splat
from stereocrafter.testing.fillscenes import Layer, Scene, render

BACKGROUND = Layer(disparity=-8.0, seed=1)


def _splat(scene: Scene, frames: int) -> dict[str, torch.Tensor]:
    rendered = [render(scene, t) for t in range(frames)]
    left = torch.stack([r["left"] for r in rendered])
    disparity = torch.stack([r["disparity"] for r in rendered])
    splat, occlusion = forward_splat(torch.cat([left, disparity], 1), disparity)
    return {
        "view": splat[:, :3].clamp(0, 1), "disparity": splat[:, 3:], "holes": occlusion >= 0.5,
        "truth": torch.stack([r["right"] for r in rendered]),
        "truth_disparity": torch.stack([r["right_disparity"] for r in rendered]),
    }  # fmt: skip


def _source_surface(s: dict[str, torch.Tensor]) -> torch.Tensor:
    """Which surface each filled pixel was copied from: the fill run on the disparity itself."""
    probe = s["disparity"].expand(-1, 3, -1, -1).contiguous()
    return fill.spatial_fill(probe, s["holes"], s["disparity"])[:, :1]


def test_a_hole_is_filled_from_the_background_never_from_the_foreground() -> None:
    s = _splat(Scene("fg", (BACKGROUND, Layer(14.0, 40, 90, 20, 70, seed=4))), 1)
    holes = s["holes"]
    assert int(holes.sum()) > 300
    surface = _source_surface(s)[holes]
    assert bool(((surface - -8.0).abs() < 0.6).all()), surface.unique()  # every pixel from the background
    # the foreground copy would have taken the 14 px surface
    assert float(s["truth_disparity"][holes].max()) == -8.0


def test_the_background_texture_is_mirrored_into_the_hole() -> None:
    row = torch.arange(12, dtype=torch.float32)
    view = torch.stack([row + 100, row]).view(1, 1, 2, 12).expand(1, 3, 2, 12).contiguous()
    disparity = torch.tensor([[2.0] * 12, [5.0] * 4 + [0.0] * 3 + [2.0] * 5]).view(1, 1, 2, 12)
    holes = torch.zeros(1, 1, 2, 12, dtype=torch.bool)
    holes[..., 1, 4:7] = True  # width 3 = 5 - 2: the hidden content is the 2 px surface on the right
    out = fill.spatial_fill(view, holes, disparity)
    # 2 * 7 - x: the mirror about pixel 7 of its own row (not the background of the row above)
    assert out[0, 0, 1, 4:7].tolist() == [10.0, 9.0, 8.0]
    assert torch.equal(out[~holes.expand_as(out)], view[~holes.expand_as(view)])


def test_a_hole_between_two_nearer_surfaces_takes_the_background_of_its_column() -> None:
    # mid layer ends at x 90, a near one starts at 110: the hole right of the mid one has the
    # near layer on its right in the rows they share; the background (-8) is in the rows above
    scene = Scene(
        "two", (BACKGROUND, Layer(2.0, 30, 90, 15, 70, seed=2), Layer(12.0, 110, 150, 30, 80, seed=3))
    )
    s = _splat(scene, 1)
    rows = slice(35, 65)
    holes = s["holes"][..., rows, 85:100]
    assert int(holes.sum()) > 100
    surface = _source_surface(s)[..., rows, 85:100][holes]
    assert bool(((surface + 8.0).abs() < 0.6).all()), surface.unique()


def test_what_earlier_frames_saw_fills_the_hole_exactly() -> None:
    scene = Scene("mover", (BACKGROUND, Layer(14.0, 20, 60, 20, 76, velocity=3.0, seed=4)), frames=16)
    s = _splat(scene, 16)
    memory = fill.BackgroundMemory()
    out = fill.fill(s["view"], s["holes"], s["disparity"], memory)
    spatial = fill.fill(s["view"], s["holes"], s["disparity"])
    late = slice(8, 16)
    holes = s["holes"][late].expand(-1, 3, -1, -1)
    error_memory = (out[late] - s["truth"][late]).abs()[holes]
    error_spatial = (spatial[late] - s["truth"][late]).abs()[holes]
    assert float(error_memory.mean()) < 0.5 * float(error_spatial.mean())
    # where the remembered pixel was background, the fill is the truth itself (a still background)
    exact = (error_memory < 1e-3).float().mean()
    assert float(exact) > 0.6
    assert memory.resets == 0 and set(memory.shifts) == {0}


def test_the_memory_follows_a_pan_and_is_dropped_at_a_cut() -> None:
    pan = Scene("pan", (BACKGROUND, Layer(10.0, 60, 100, 20, 70, seed=5)), pan=2.0)
    s = _splat(pan, 8)
    memory = fill.BackgroundMemory()
    fill.fill(s["view"], s["holes"], s["disparity"], memory)
    assert memory.shifts == [2] * 7 and memory.resets == 0
    other = _splat(Scene("cut", (Layer(-8.0, seed=9), Layer(10.0, 60, 100, 20, 70, seed=5))), 1)
    fill.fill(other["view"], other["holes"], other["disparity"], memory)
    assert memory.resets == 1  # nothing remembered matches the new shot


def test_rows_without_any_known_pixel_take_their_column() -> None:
    view = torch.rand(1, 3, 6, 8)
    holes = torch.zeros(1, 1, 6, 8, dtype=torch.bool)
    holes[..., 2:4, :] = True
    out = fill.spatial_fill(view, holes, torch.zeros(1, 1, 6, 8))
    assert torch.equal(out[..., 2:4, :], view[..., 1:2, :].expand(-1, -1, 2, -1))


def test_identical_frames_get_identical_fills() -> None:
    s = _splat(Scene("still", (BACKGROUND, Layer(12.0, 50, 100, 20, 70, seed=3))), 1)
    twice = {k: v.expand(2, -1, -1, -1) for k, v in s.items()}
    out = fill.fill(twice["view"], twice["holes"], twice["disparity"], fill.BackgroundMemory())
    assert torch.equal(out[0], out[1])


def test_what_later_frames_of_the_chunk_show_fills_where_the_past_never_saw() -> None:
    # the foreground moves left: the background its hole hides now is uncovered a few frames later
    scene = Scene("leaving", (BACKGROUND, Layer(14.0, 100, 140, 20, 76, velocity=-3.0, seed=4)), frames=16)
    s = _splat(scene, 16)
    past_only = fill.fill(s["view"], s["holes"], s["disparity"], fill.BackgroundMemory(), ahead=False)
    both = fill.fill(s["view"], s["holes"], s["disparity"], fill.BackgroundMemory())
    early = slice(0, 8)
    holes = s["holes"][early].expand(-1, 3, -1, -1)
    error_past = (past_only[early] - s["truth"][early]).abs()[holes]
    error_both = (both[early] - s["truth"][early]).abs()[holes]
    assert float(error_both.mean()) < 0.5 * float(error_past.mean())
    assert float((error_both < 1e-3).float().mean()) > 0.6  # the later frames' background, exactly


def _border_case(disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Splat a left view whose every pixel holds its row's number (the fill of a probe shows which
    row each hole pixel came from): -> the rows the fill took, the holes, and the border holes."""
    t, _, h, w = disparity.shape
    rows = torch.arange(h, dtype=torch.float32).view(1, 1, h, 1).expand(t, 1, h, w)
    splat, occlusion = forward_splat(torch.cat([rows, disparity], 1), disparity)
    holes = occlusion >= 0.5
    right_disparity = splat[:, 1:]
    taken = fill.spatial_fill(torch.where(holes, -1.0, rows), holes, right_disparity)
    left, right = nearest_known(~holes)
    border = holes & ((left < 0) | (right >= w))
    return taken, holes, border


def test_a_hole_at_the_right_border_is_filled_from_its_own_row() -> None:
    # near content reaching the right edge over a zero-disparity region: its splat leaves the right
    # border uncovered, a hole whose only side is that content
    disparity = torch.zeros(1, 1, 24, 80)
    disparity[..., 4:20, 50:] = 10.0
    taken, holes, border = _border_case(disparity)
    rows = torch.arange(24, dtype=torch.float32).view(1, 1, 24, 1).expand_as(taken)
    assert int(border.sum()) >= 16 * 9
    assert torch.equal(taken[border], rows[border])  # never another row's pixel
    assert bool((taken[holes] >= 0).all())  # every hole filled
    # MI-GAN's context keeps the side a border hole continues (it is not the foreground of that hole)
    from stereocrafter.stages.migan import context_mask

    splat, occlusion = forward_splat(torch.cat([disparity, disparity], 1), disparity)
    known = context_mask(occlusion >= 0.5, splat[:, 1:])
    side = torch.zeros_like(border)
    side[..., :-1] = border[..., 1:] & ~border[..., :-1] & ~holes[..., :-1]  # the pixel left of each
    assert int(side.sum()) >= 16 and bool((known[side] == 1).all())


def test_border_holes_of_a_disparity_ramp_take_their_own_rows() -> None:
    # disparity rising from 0 to 12 px across the band of rows 10-29, 0 above and below it: the
    # band's border hole is as wide as its left side's disparity, so the width rule would say its
    # content is at 0, the zero-disparity rows' surface
    disparity = torch.zeros(1, 1, 40, 120)
    disparity[..., 10:30, :] = torch.linspace(0, 12, 120)
    taken, _, border = _border_case(disparity)
    rows = torch.arange(40, dtype=torch.float32).view(1, 1, 40, 1).expand_as(taken)
    assert int(border.sum()) > 200
    assert torch.equal(taken[border], rows[border])


@pytest.mark.gpu
def test_on_a_gpu_the_fill_is_the_cpu_s_and_the_same_every_time() -> None:
    s = _splat(Scene("mover", (BACKGROUND, Layer(14.0, 20, 60, 20, 76, velocity=3.0, seed=4)), frames=16), 16)
    cpu = fill.fill(s["view"], s["holes"], s["disparity"], fill.BackgroundMemory())
    on = {k: v.cuda() for k, v in s.items()}
    runs = [fill.fill(on["view"], on["holes"], on["disparity"], fill.BackgroundMemory()) for _ in range(5)]
    assert all(torch.equal(run, runs[0]) for run in runs)
    assert float((runs[0].cpu() - cpu).abs().max()) <= 1e-6
