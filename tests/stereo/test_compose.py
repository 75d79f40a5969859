"""Stereo layouts: sizes, which eye goes where, rounding, Dubois maths."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.stereo.compose import (
    DUBOIS_LEFT,
    DUBOIS_RIGHT,
    MODES,
    compose,
    linear_to_srgb,
    output_size,
    srgb_to_linear,
)


def eyes(t: int = 2, h: int = 6, w: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((t, 3, h, w), generator=gen), torch.rand((t, 3, h, w), generator=gen)


def as_uint8(x: torch.Tensor) -> torch.Tensor:
    """(T, 3, H, W) float -> (T, H, W, 3) uint8, rounding."""
    return (x * 255).round().to(torch.uint8).permute(0, 2, 3, 1)


@pytest.mark.parametrize(
    ("mode", "size"),
    [
        ("sbs", (20, 6)),
        ("half-sbs", (10, 6)),
        ("top-bottom", (10, 12)),
        ("anaglyph", (10, 6)),
        ("anaglyph-dubois", (10, 6)),
    ],
)
def test_sizes(mode: str, size: tuple[int, int]) -> None:
    left, right = eyes()
    out = compose(left, right, mode)
    assert out.dtype == torch.uint8
    assert out.shape == (2, size[1], size[0], 3)
    assert output_size(mode, 10, 6) == size


def test_every_mode_is_covered() -> None:
    assert set(MODES) == {"sbs", "half-sbs", "top-bottom", "anaglyph", "anaglyph-dubois"}


def test_sbs_puts_the_left_eye_on_the_left() -> None:
    left, right = eyes()
    out = compose(left, right, "sbs")
    assert torch.equal(out[:, :, :10], as_uint8(left))
    assert torch.equal(out[:, :, 10:], as_uint8(right))


def test_top_bottom_puts_the_left_eye_on_top() -> None:
    left, right = eyes()
    out = compose(left, right, "top-bottom")
    assert torch.equal(out[:, :6], as_uint8(left))
    assert torch.equal(out[:, 6:], as_uint8(right))


def test_half_sbs_squeezes_each_eye() -> None:
    left = torch.zeros((1, 3, 4, 8))
    right = torch.ones((1, 3, 4, 8))
    left[..., 0::2] = 1.0  # columns alternate 1, 0: a 2:1 squeeze averages them to 0.5
    out = compose(left, right, "half-sbs")
    assert out.shape == (1, 4, 8, 3)
    assert torch.all((out[:, :, :4].int() - 128).abs() <= 1)
    assert torch.all(out[:, :, 4:] == 255)
    odd = compose(torch.zeros((1, 3, 4, 9)), torch.ones((1, 3, 4, 9)), "half-sbs")
    assert odd.shape == (1, 4, 8, 3) and output_size("half-sbs", 9, 4) == (8, 4)


def test_anaglyph_red_only_from_left_green_blue_only_from_right() -> None:
    left, right = eyes()
    out = compose(left, right, "anaglyph")
    assert torch.equal(out[..., 0], as_uint8(left)[..., 0])
    assert torch.equal(out[..., 1:], as_uint8(right)[..., 1:])
    # Changing the right eye's red channel or the left eye's green/blue changes nothing.
    right2, left2 = right.clone(), left.clone()
    right2[:, 0] = 1 - right2[:, 0]
    left2[:, 1:] = 1 - left2[:, 1:]
    assert torch.equal(compose(left2, right2, "anaglyph"), out)


def test_rounds_instead_of_truncating() -> None:
    # 0.5 / 255 above level 100 rounds up to 101; the reference's truncation would give 100.
    value = (100.6 / 255.0) * torch.ones((1, 3, 2, 2))
    out = compose(value, value, "sbs")
    assert torch.all(out == 101)
    # k / 255 in float32 can sit just below k: rounding still gives k.
    exact = torch.full((1, 3, 2, 2), 57 / 255.0)
    assert torch.all(compose(exact, exact, "anaglyph") == 57)


def test_out_of_range_values_are_clipped() -> None:
    left = torch.full((1, 3, 2, 2), 1.7)
    right = torch.full((1, 3, 2, 2), -0.3)
    out = compose(left, right, "sbs")
    assert torch.all(out[:, :, :2] == 255) and torch.all(out[:, :, 2:] == 0)


def test_dubois_matches_the_matrices_in_linear_light() -> None:
    left, right = eyes(t=1, h=3, w=4, seed=2)
    out = compose(left, right, "anaglyph-dubois")
    # Per pixel, written out without einsum.
    ml, mr = torch.tensor(DUBOIS_LEFT), torch.tensor(DUBOIS_RIGHT)
    lin_l = srgb_to_linear(left[0]).reshape(3, -1)
    lin_r = srgb_to_linear(right[0]).reshape(3, -1)
    mixed = (ml @ lin_l + mr @ lin_r).clamp(0, 1)
    expected = as_uint8(linear_to_srgb(mixed).reshape(1, 3, 3, 4))
    assert torch.equal(out, expected)


def test_dubois_sends_left_to_red_and_right_to_cyan() -> None:
    white = torch.ones((1, 3, 2, 2))
    black = torch.zeros((1, 3, 2, 2))
    left_only = compose(white, black, "anaglyph-dubois")[0, 0, 0].tolist()
    right_only = compose(black, white, "anaglyph-dubois")[0, 0, 0].tolist()
    assert left_only[0] > 200 and left_only[1] == 0 and left_only[2] == 0
    assert right_only[0] == 0 and right_only[1] > 200 and right_only[2] > 200


def test_srgb_transfer_round_trip() -> None:
    x = torch.linspace(0, 1, 1001)
    torch.testing.assert_close(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-6, rtol=0)
    assert float(srgb_to_linear(torch.tensor(0.5))) == pytest.approx(0.2140, abs=1e-4)


def test_unknown_mode_and_bad_shapes(depth_pipeline, inpainting_pipeline) -> None:  # type: ignore[no-untyped-def]
    """A mode is checked once below the edge, by the pipeline's ``check_inputs`` (the layouts
    themselves trust it); the shapes by ``compose``."""
    from stereocrafter.pipeline.run import StereoPipeline

    left, right = eyes()
    pipeline = StereoPipeline(depth_pipeline, inpainting_pipeline)
    with pytest.raises(ValueError, match=r"unknown stereo mode 'vr180'.*anaglyph, sbs"):
        pipeline.run(lambda: iter([]), lambda _: None, num_frames=1, width=8, height=6, mode="vr180")
    with pytest.raises(ValueError, match="right must match"):
        compose(left, right[:, :, :-1], "sbs")
    with pytest.raises(ValueError, match="left must be"):
        compose(left[:, :2], right[:, :2], "sbs")
    with pytest.raises(ValueError, match="unknown stereo mode"):
        pipeline.check_inputs(pipeline.config, 1, "SBS")
