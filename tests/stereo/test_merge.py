"""The fast preset's merge of a low-resolution inpaint into the full-resolution splat."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from stereocrafter.stereo.merge import enlarge, hole_weights, merge_right_view, shrink, working_size


def holes(t: int, h: int, w: int, points: list[tuple[int, int]]) -> torch.Tensor:
    occlusion = torch.zeros(t, 1, h, w)
    for y, x in points:
        occlusion[:, :, y, x] = 1.0
    return occlusion


def test_weights_are_one_on_and_near_holes_then_fade_to_exactly_zero() -> None:
    occlusion = holes(1, 21, 21, [(10, 10)])
    occlusion[0, 0, 0, 0] = 0.4  # partially covered: not a hole (the model binarises at 0.5 too)
    weight = hole_weights(occlusion, dilate_px=2, feather_px=3)[0, 0]
    assert weight[10, 10] == 1 and weight[8, 12] == 1  # within 2 px (Chebyshev)
    # rings at distance 3, 4, 5: 3/4, 2/4, 1/4; then 0 exactly
    assert [float(weight[10, 10 + d]) for d in (3, 4, 5, 6)] == [0.75, 0.5, 0.25, 0.0]
    assert weight[0, 0] == 0 and int((weight > 0).sum()) == 11 * 11
    assert torch.equal(hole_weights(occlusion, 0, 0)[0, 0], (occlusion[0, 0] >= 0.5).float())
    with pytest.raises(ValueError):
        hole_weights(occlusion, -1, 0)


def test_merge_keeps_the_splat_bit_for_bit_outside_the_holes() -> None:
    gen = torch.Generator().manual_seed(0)
    warped = torch.rand(3, 3, 32, 48, generator=gen)
    inpainted = torch.rand(3, 3, 32, 48, generator=gen)
    weight = hole_weights(holes(3, 32, 48, [(5, 5), (20, 30)]), 1, 2)
    merged = merge_right_view(warped, inpainted, weight)
    outside = (weight == 0).expand_as(warped)
    assert torch.equal(merged[outside], warped[outside])
    core = (weight == 1).expand_as(warped)
    torch.testing.assert_close(merged[core], inpainted[core], rtol=0, atol=1e-7)
    ring = ((weight > 0) & (weight < 1)).expand_as(warped)
    assert ring.any() and not torch.equal(merged[ring], warped[ring])
    with pytest.raises(ValueError):
        merge_right_view(warped, inpainted[:, :, :-1], weight)


@pytest.mark.parametrize(
    ("size", "max_res", "expected"),
    [
        ((1080, 1920), 1024, (576, 1024)),
        ((720, 1280), 1024, (576, 1024)),
        ((576, 1024), 1024, (576, 1024)),
        ((1600, 3840), 1024, (424, 1024)),
        ((1920, 1080), 1024, (1024, 576)),  # portrait
        ((1080, 1920), 0, (1080, 1920)),  # 0: the source size
        ((33, 17), 1024, (33, 17)),
    ],
)
def test_working_size(size: tuple[int, int], max_res: int, expected: tuple[int, int]) -> None:
    assert working_size(*size, max_res) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1080, 1920), (256, 448)),  # 512x288 would round to 256 or 320 rows: 448x256 keeps 16:9 best
        ((576, 1024), (256, 448)),
        ((720, 1280), (256, 448)),
        ((480, 640), (384, 512)),  # 4:3 fits exactly
        ((1080, 2560), (192, 448)),
        ((1920, 1080), (448, 256)),  # portrait
        ((300, 400), (300, 400)),  # at most 512 already: the source size (the pipeline pads)
    ],
)
def test_turbo_s_working_size_is_in_multiples_of_64_and_keeps_the_aspect(
    size: tuple[int, int], expected: tuple[int, int]
) -> None:
    got = working_size(*size, 512, 64)
    assert got == expected
    if got != size:
        assert max(got) <= 512 and got[0] % 64 == 0 and got[1] % 64 == 0
        assert abs(got[1] / got[0] - size[1] / size[0]) / (size[1] / size[0]) < 0.02


def test_shrink_keeps_every_hole_and_enlarge_restores_the_size() -> None:
    occlusion = holes(2, 90, 160, [(1, 1), (45, 80), (89, 159)])
    warped = torch.rand(2, 3, 90, 160)
    small, small_holes = shrink(warped, occlusion, (36, 64))
    assert small.shape == (2, 3, 36, 64) and small_holes.shape == (2, 1, 36, 64)
    assert int(small_holes[0].sum()) == 3  # one-pixel holes survive a 2.5x reduction
    assert set(small_holes.unique().tolist()) <= {0.0, 1.0}
    same = shrink(warped, occlusion, (90, 160))
    assert same[0] is warped and same[1] is occlusion  # nothing to do at the source size
    back = enlarge(small, (90, 160))
    assert back.shape == (2, 3, 90, 160) and back.min() >= 0 and back.max() <= 1


@pytest.mark.parametrize(("dilate", "feather"), [(4, 4), (1, 1), (0, 3), (6, 0)])
def test_hole_weights_equal_the_square_max_pool_definition(dilate: int, feather: int) -> None:
    """The separable max (a column pass, then a row pass) gives exactly what one square max
    pool gives, at the frame's edges too."""
    generator = torch.Generator().manual_seed(3)
    occlusion = (torch.rand(2, 1, 37, 53, generator=generator) > 0.97).float()
    occlusion[0, 0, 0, 0] = occlusion[1, 0, -1, -1] = 1.0  # holes at the corners
    grown = (occlusion >= 0.5).float()
    if dilate:
        grown = F.max_pool2d(grown, 2 * dilate + 1, stride=1, padding=dilate)
    expected = grown
    for step in range(1, feather + 1):
        grown = F.max_pool2d(grown, 3, stride=1, padding=1)
        expected = torch.maximum(expected, grown * (1.0 - step / (feather + 1)))
    assert torch.equal(hole_weights(occlusion, dilate, feather), expected)
