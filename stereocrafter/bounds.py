"""Numeric rules that more than one room enforces, declared once (no imports: anything may use them).

- ``MAX_DEPTH_VALUE``: the bound of every raw or aligned depth value a request or a stored depth may
  carry (``depth_scale``, ``depth_shift``, ``depth_range``, a stored depth's low and high). Raw
  DepthCrafter depth lies in [0, 1]; 1e6 leaves room for any affine alignment while keeping
  ``scale * raw + shift`` far inside float32 (at most 1e12).
- ``MIN_RELATIVE_SPAN``: a depth range [low, high] normalises depth as (d - low) / (high - low) in
  float32, whose relative precision is 6e-8. A span narrower than 1e-6 of the values' magnitude
  (at least of 1) becomes zero or a handful of float32 steps: NaN, or the whole clip flattened to
  one depth. The schema refuses such a request (400); a clip whose own depth is that flat is
  treated as flat (depth 0 everywhere, as the reference's constant-depth case).
"""

from __future__ import annotations

MAX_DEPTH_VALUE = 1e6
MIN_RELATIVE_SPAN = 1e-6


def min_span(low: float, high: float) -> float:
    """The narrowest span a range around ``low`` and ``high`` may have (``MIN_RELATIVE_SPAN``)."""
    return MIN_RELATIVE_SPAN * max(1.0, abs(low), abs(high))


def wide_enough(low: float, high: float) -> bool:
    """True when [low, high] is a range float32 normalisation can use: finite, low < high, and
    ``high - low >= min_span(low, high)``."""
    return low < high and high - low >= min_span(low, high) and abs(high - low) < float("inf")


def check_depth_range(low: float, high: float) -> None:
    """``ValueError`` naming the rule unless ``wide_enough(low, high)``."""
    if not low < high:
        raise ValueError(f"depth_range must be [low, high] with low < high, got [{low:g}, {high:g}]")
    if not wide_enough(low, high):
        raise ValueError(
            f"depth_range [{low:.9g}, {high:.9g}] is too narrow: high - low must be at least "
            f"{MIN_RELATIVE_SPAN:g} x max(1, |low|, |high|) = {min_span(low, high):.3g}, or float32 "
            "normalisation cannot tell the depths apart"
        )
