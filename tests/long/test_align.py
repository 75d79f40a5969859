"""The alignment maths of long videos (``align``, numpy only, no I/O): trimmed fits, chained maps,
the one-frame extrapolation, scene cuts, ranges, and refused summaries."""

from __future__ import annotations

import numpy as np
import pytest

from stereocrafter.long.align import align, fit_affine


def test_the_trimmed_fit_ignores_outliers() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 1, (36, 64))
    y = 1.7 * x - 0.3
    y[:5] = rng.uniform(-5, 5, (5, 64))  # 14 % of the pixels are nonsense (a moving edge)
    scale, shift, residual = fit_affine(x, y)
    assert scale == pytest.approx(1.7, abs=1e-9) and shift == pytest.approx(-0.3, abs=1e-9)
    assert residual < 1e-9
    plain = np.polyfit(x.ravel(), y.ravel(), 1)
    assert abs(plain[0] - 1.7) > 0.05  # an untrimmed fit would be off


def _summary(depth: np.ndarray, colour: int = 100, p: tuple[float, float] | None = None) -> dict:
    """A depth task's answer for a segment whose first and last frames are ``depth``."""
    rgb = np.full((18, 32, 3), colour).tolist()
    lo, hi = p if p is not None else (float(depth.min()), float(depth.max()))
    return {
        "stats": {"min": float(depth.min()), "max": float(depth.max()), "p1": lo, "p99": hi},
        "thumbnails": {"depth_first": depth.tolist(), "depth_last": depth.tolist(), "colour_first": rgb,
                       "colour_last": rgb},
    }  # fmt: skip


def test_maps_chain_from_the_middle_segment_and_undo_each_distortion() -> None:
    truth = np.random.default_rng(0).uniform(0.2, 0.8, (36, 64))
    distortions = [(0.6, 0.1), (1.4, -0.4), (1.0, 0.0), (0.8, 0.3), (1.6, 0.05)]
    result = align([_summary(a * truth + b) for a, b in distortions])
    assert [s.reference for s in result.segments if s] == [False, False, True, False, False]
    for (a, b), seg in zip(distortions, result.segments, strict=True):
        assert seg is not None and seg.shot == 0
        # aligned = scale * (a t + b) + shift must be the reference's own raw depth, 1.0 t + 0.0
        assert seg.scale * a == pytest.approx(1.0) and seg.scale * b + seg.shift == pytest.approx(
            0.0, abs=1e-9
        )
    for seg in result.segments:  # one range: the truth's, in the reference's (undistorted) units
        assert seg is not None
        assert (seg.low, seg.high) == (pytest.approx(truth.min()), pytest.approx(truth.max()))


def test_extrapolation_cancels_a_dolly_between_the_boundary_frames() -> None:
    """The whole scene moves in depth at constant speed: plain adjacent frames take that motion
    for the clip ambiguity; extrapolating each side one frame does not."""
    base, v = np.random.default_rng(2).uniform(0.2, 0.7, (36, 64)), 0.01
    (a1, b1), (a2, b2) = (1.2, 0.1), (0.7, -0.2)

    def thumbs(frames: list[np.ndarray], a: float, b: float) -> dict:
        d = [(a * f + b).tolist() for f in frames]
        rgb = np.full((18, 32, 3), 50).tolist()
        return {"depth_first": d[0], "depth_second": d[1], "depth_second_last": d[-2], "depth_last": d[-1],
                "colour_first": rgb, "colour_last": rgb}  # fmt: skip

    stats = {"min": 0.0, "max": 1.0, "p1": 0.0, "p99": 1.0}
    before = {"stats": stats, "thumbnails": thumbs([base + v * t for t in range(4)], a1, b1)}  # frames 0-3
    after = {"stats": stats, "thumbnails": thumbs([base + v * t for t in range(4, 8)], a2, b2)}  # frames 4-7
    for extrapolate, tolerance in ((True, 1e-9), (False, None)):
        result = align([before, after], extrapolate=extrapolate)
        first, second = result.segments
        assert first is not None and second is not None
        # The same true depth t must map to the same aligned value from both segments.
        t = np.array([0.2, 0.6])
        gap = np.abs(
            (first.scale * (a1 * t + b1) + first.shift) - (second.scale * (a2 * t + b2) + second.shift)
        )
        if tolerance is not None:
            assert gap.max() < tolerance
        else:
            assert gap.max() > 0.5 * a1 * v  # about one frame of motion, taken for the ambiguity


def test_cuts_and_missing_segments_split_the_chain() -> None:
    rng = np.random.default_rng(1)
    shot_a, shot_b = rng.uniform(0, 1, (36, 64)), rng.uniform(0, 1, (36, 64))
    summaries = [_summary(shot_a), _summary(shot_a * 2), _summary(shot_b, colour=220), None, _summary(shot_b)]
    result = align(summaries)
    b0, b1, b2, b3 = result.boundaries
    assert b0 is not None and not b0.cut
    assert b1 is not None and b1.cut and "colour change" in b1.reason
    assert b2 is None and b3 is None
    assert [s.shot if s else None for s in result.segments] == [0, 0, 1, None, 2]
    assert "CUT" in result.table() and "(no depth: failed)" in result.table()
    with pytest.raises(ValueError, match="no depth"):
        result.request_fields(3)


def test_the_robust_range_comes_from_the_percentiles() -> None:
    t = np.linspace(0, 1, 36 * 64).reshape(36, 64)
    robust = align([_summary(t, p=(0.1, 0.9))], robust=True).request_fields(0)
    plain = align([_summary(t, p=(0.1, 0.9))], robust=False).request_fields(0)
    assert robust["depth_range"] == [0.1, 0.9] and plain["depth_range"] == [0.0, 1.0]


def test_a_boundary_with_exactly_one_flat_side_is_a_cut() -> None:
    """A textured shot into a flat frame (a fade, a title card): the correlation of a flat map
    with anything used to be 1.0, so the two were chained; two flat sides still agree."""
    textured = np.random.default_rng(4).uniform(0.2, 0.8, (36, 64))
    flat = np.full((36, 64), 0.5)
    for before, after in ((textured, flat), (flat, textured)):
        boundary = align([_summary(before), _summary(after)]).boundaries[0]
        assert boundary is not None and boundary.cut and "one side is flat" in boundary.reason
        assert boundary.correlation == 0.0
    both = align([_summary(flat), _summary(flat + 0.1)]).boundaries[0]
    assert both is not None and not both.cut and both.correlation == 1.0


@pytest.mark.parametrize("field", ["depth_last", "depth_first", "colour_first"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_thumbnails_are_refused_with_the_segment_named(field: str, bad: float) -> None:
    truth = np.random.default_rng(5).uniform(0.2, 0.8, (36, 64))
    broken = _summary(truth)
    values = np.asarray(broken["thumbnails"][field], dtype=np.float64)
    values.flat[7] = bad
    broken["thumbnails"][field] = values.tolist()
    with pytest.raises(ValueError, match=f"segment 1: its {field} thumbnail holds non-finite values"):
        align([_summary(truth), broken])
    broken["thumbnails"][field] = np.asarray(_summary(truth)["thumbnails"][field]).tolist()
    broken["stats"]["p99"] = float("nan")
    with pytest.raises(ValueError, match=r"segment 1: its stats\.p99 is not a finite number"):
        align([_summary(truth), broken])
