"""One depth scale across the segments of a long video (numpy only: the client imports this).

DepthCrafter's raw depth is relative: each segment's is right only up to its own affine map, so
segments normalised alone make the disparity jump at every boundary. From each segment's depth
summary (``depthstore.depth_summary``: raw-depth statistics and thumbnails of its first and last
frames) this module:

1. fits, at each boundary, raw_i ~ a * raw_{i+1} + b from the last depth thumbnails of segment i
   and the first of segment i+1 (adjacent frames; each side extrapolated to the other's frame at
   constant speed, ``fit_boundary``), by trimmed least squares: fit, drop the ``TRIM`` share of
   pixels with the largest residuals (moving edges, disocclusions), refit, a few times;
2. calls the boundary a scene cut, and does not chain across it, when the colours change (mean
   absolute difference of the colour thumbnails over ``COLOUR_CUT``), when the depth thumbnails
   do not agree (correlation under ``CORRELATION_CUT``), when exactly one side is flat (a fade,
   a title card: variance under ``FLAT``) or when the fit is implausible (a scale outside
   [1/``MAX_STEP_SCALE``, ``MAX_STEP_SCALE``]); a missing (failed) segment also breaks the
   chain. A summary with non-finite statistics or thumbnails is refused (``ValueError`` naming
   the segment);
3. chains the fits within each run of connected segments (a "shot") from its middle segment, the
   reference (map (1, 0)), so no segment is more than half a shot's boundaries away from it;
4. gives each shot one range over its aligned segments: [min of the aligned 1st percentiles, max
   of the aligned 99th percentiles] (``robust=True``; at most about 1 % of a segment's pixels are
   clamped at either end), or the aligned minima and maxima (``robust=False``, the reference's
   min-max on every pixel).

A stereo task then normalises (scale * raw + shift - low) / (high - low): the same normalised depth,
so the same disparity, for a surface on both sides of a boundary.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from stereocrafter.bounds import wide_enough

TRIM = 0.2  # share of thumbnail pixels dropped as outliers at each refit
FIT_ITERATIONS = 4
COLOUR_CUT = 0.12  # mean absolute colour difference (0-1) above which a boundary is a cut
CORRELATION_CUT = 0.3  # depth-thumbnail correlation below which a boundary is a cut
MAX_STEP_SCALE = 10.0  # a boundary's fitted scale beyond 10x either way is not the same shot
FLAT = 1e-9  # a thumbnail with less variance than this gives no scale (shift only)


@dataclass(frozen=True)
class Boundary:
    """Between segment ``index`` and ``index + 1``."""

    index: int
    scale: float  # raw_index ~ scale * raw_{index+1} + shift
    shift: float
    residual: float  # RMS residual of the kept pixels, in segment index's raw units
    correlation: float
    colour_difference: float
    cut: bool
    reason: str  # why it is a cut ("" when chained)


@dataclass(frozen=True)
class SegmentMap:
    index: int
    scale: float  # aligned = scale * raw + shift
    shift: float
    shot: int
    reference: bool
    low: float  # the shot's range, in aligned units
    high: float


@dataclass
class Alignment:
    segments: list[SegmentMap | None]  # None: the segment's depth failed
    boundaries: list[Boundary | None]  # None: a neighbour is missing
    robust: bool
    notes: list[str] = field(default_factory=list)

    def request_fields(self, index: int) -> dict[str, Any]:
        """The stereo task's fields for segment ``index``."""
        seg = self.segments[index]
        if seg is None:
            raise ValueError(f"segment {index} has no depth")
        return {"depth_scale": seg.scale, "depth_shift": seg.shift, "depth_range": [seg.low, seg.high]}

    def as_dict(self) -> dict[str, Any]:
        return {
            "robust": self.robust,
            "segments": [asdict(s) if s else None for s in self.segments],
            "boundaries": [asdict(b) if b else None for b in self.boundaries],
            "notes": self.notes,
        }

    def table(self) -> str:
        """A human-readable plan: one line per segment, one per boundary."""
        lines = ["segment  shot  scale       shift       range"]
        for i, seg in enumerate(self.segments):
            if seg is None:
                lines.append(f"{i:>7}  -     (no depth: failed)")
            else:
                ref = "  (reference)" if seg.reference else ""
                lines.append(
                    f"{i:>7}  {seg.shot:>4}  {seg.scale:<10.5g}  {seg.shift:<10.5g}  "
                    f"[{seg.low:.5g}, {seg.high:.5g}]{ref}"
                )
            if i < len(self.boundaries):
                b = self.boundaries[i]
                if b is None:
                    lines.append(f"   {i}|{i + 1}  break: a neighbour has no depth")
                else:
                    what = f"CUT ({b.reason})" if b.cut else "chained"
                    lines.append(
                        f"   {i}|{i + 1}  {what}: fit {b.scale:.4g} x + {b.shift:.4g}, residual "
                        f"{b.residual:.3g}, correlation {b.correlation:.3f}, colour change "
                        f"{b.colour_difference:.3f}"
                    )
        return "\n".join(lines + self.notes)


def fit_affine(source: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    """target ~ scale * source + shift by trimmed least squares; (scale, shift, RMS residual of
    the kept pixels). A flat ``source`` gives scale 1 and the median offset."""
    x = np.asarray(source, dtype=np.float64).ravel()
    y = np.asarray(target, dtype=np.float64).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"thumbnails differ in size: {np.shape(source)} and {np.shape(target)}")
    keep = np.ones(x.size, dtype=bool)
    scale, shift = 1.0, float(np.median(y - x))
    for _ in range(FIT_ITERATIONS):
        xs, ys = x[keep], y[keep]
        if xs.var() < FLAT:
            scale, shift = 1.0, float(np.median(ys - xs))
        else:
            scale, shift = (float(v) for v in np.polyfit(xs, ys, 1))
        residual = np.abs(y - (scale * x + shift))
        keep = residual <= np.quantile(residual, 1.0 - TRIM)
    rms = float(np.sqrt(np.mean((y[keep] - (scale * x[keep] + shift)) ** 2)))
    return scale, shift, rms


def _flat(x: np.ndarray) -> bool:
    return bool(x.var() < FLAT)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two thumbnails; two flat maps agree (1.0), a flat map and a
    textured one share nothing (0.0)."""
    if _flat(a) or _flat(b):
        return 1.0 if _flat(a) and _flat(b) else 0.0
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _thumbnail(summary: dict[str, Any], name: str, index: int) -> np.ndarray:
    """A depth or colour thumbnail as float64; ``ValueError`` naming the segment when it is not
    a finite 2-D or 3-D array (a damaged or foreign summary would otherwise fail deep in numpy)."""
    try:
        array = np.asarray(summary["thumbnails"][name], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"segment {index}: its summary has no usable {name} thumbnail") from None
    if array.ndim not in (2, 3) or array.size == 0:
        raise ValueError(f"segment {index}: its {name} thumbnail is not an image (shape {array.shape})")
    if not np.isfinite(array).all():
        raise ValueError(f"segment {index}: its {name} thumbnail holds non-finite values (NaN or inf)")
    return array


def check_summary(summary: dict[str, Any], index: int) -> None:
    """``ValueError`` naming segment ``index`` and the field unless its depth summary (a depth
    task's answer) has finite statistics and finite thumbnails."""
    stats = summary.get("stats") if isinstance(summary, dict) else None
    if not isinstance(stats, dict):
        raise ValueError(f"segment {index}: its summary has no stats")
    for key in ("min", "max", "p1", "p99"):
        value = stats.get(key)
        if not isinstance(value, int | float) or not np.isfinite(value):
            raise ValueError(f"segment {index}: its stats.{key} is not a finite number ({value!r})")
    for name in ("depth_first", "depth_last", "colour_first", "colour_last"):
        _thumbnail(summary, name, index)
    for name in ("depth_second", "depth_second_last"):
        if name in summary["thumbnails"]:
            _thumbnail(summary, name, index)


def fit_boundary(
    index: int, before: dict[str, Any], after: dict[str, Any], *, extrapolate: bool = True
) -> Boundary:
    """The boundary between two segments' summaries (the ``depth`` task's ``thumbnails``).

    The two sides are different frames (the last of one segment, the first of the next), so the
    scene may have moved in depth between them; a change of the whole scene (a dolly) would be
    taken for the clip ambiguity and carried down the chain. With the second and second-to-last
    thumbnails, each side is extrapolated one frame at constant speed to the other's frame
    (2 d_f - d_(f-1) and 2 d_(f+1) - d_(f+2)) and both equations are fitted at once, which
    cancels motion at constant speed; without them, the plain frames are fitted.
    """
    check_summary(before, index)
    check_summary(after, index + 1)
    tb, ta = before["thumbnails"], after["thumbnails"]
    last = _thumbnail(before, "depth_last", index)
    first = _thumbnail(after, "depth_first", index + 1)
    if extrapolate and "depth_second_last" in tb and "depth_second" in ta:
        ahead = 2 * last - _thumbnail(before, "depth_second_last", index)  # segment i at f + 1
        behind = 2 * first - _thumbnail(after, "depth_second", index + 1)  # segment i + 1 at f
        scale, shift, residual = fit_affine(np.concatenate([first, behind]), np.concatenate([ahead, last]))
    else:
        scale, shift, residual = fit_affine(first, last)
    correlation = _correlation(first, last)
    colour_a = _thumbnail(before, "colour_last", index) / 255.0
    colour_b = _thumbnail(after, "colour_first", index + 1) / 255.0
    colour = float(np.abs(colour_a - colour_b).mean()) if colour_a.shape == colour_b.shape else 1.0
    reasons = []
    if _flat(last) != _flat(first):  # a fade to black, a title card: not the same shot
        flat_side = "the first segment's end" if _flat(last) else "the second segment's start"
        reasons.append(f"one side is flat ({flat_side})")
    if colour > COLOUR_CUT:
        reasons.append(f"colour change {colour:.3f} > {COLOUR_CUT}")
    if correlation < CORRELATION_CUT:
        reasons.append(f"depth correlation {correlation:.3f} < {CORRELATION_CUT}")
    if not (1 / MAX_STEP_SCALE <= scale <= MAX_STEP_SCALE):
        reasons.append(f"fitted scale {scale:.3g} outside [1/{MAX_STEP_SCALE:g}, {MAX_STEP_SCALE:g}]")
    return Boundary(index, scale, shift, residual, correlation, colour, bool(reasons), "; ".join(reasons))


def align(
    summaries: list[dict[str, Any] | None], *, robust: bool = True, extrapolate: bool = True
) -> Alignment:
    """The alignment of segments in playback order; ``None`` marks a segment whose depth failed.
    ``extrapolate=False`` fits the plain adjacent frames (see ``fit_boundary``)."""
    n = len(summaries)
    for index, summary in enumerate(summaries):
        if summary is not None:
            check_summary(summary, index)
    boundaries: list[Boundary | None] = []
    for i in range(n - 1):
        a, b = summaries[i], summaries[i + 1]
        boundaries.append(
            fit_boundary(i, a, b, extrapolate=extrapolate) if a is not None and b is not None else None
        )
    # Shots: runs of present segments joined by chained boundaries.
    shots: list[list[int]] = []
    for i in range(n):
        if summaries[i] is None:
            continue
        joined = i > 0 and (prev := boundaries[i - 1]) is not None and not prev.cut
        if joined and shots:
            shots[-1].append(i)
        else:
            shots.append([i])
    maps: list[SegmentMap | None] = [None] * n
    for shot_index, members in enumerate(shots):
        reference = members[len(members) // 2]
        scale = {reference: 1.0}
        shift = {reference: 0.0}
        for i in range(reference + 1, members[-1] + 1):  # M_i(x) = M_{i-1}(a x + b)
            fit = boundaries[i - 1]
            assert fit is not None
            scale[i], shift[i] = scale[i - 1] * fit.scale, scale[i - 1] * fit.shift + shift[i - 1]
        for i in range(reference - 1, members[0] - 1, -1):  # M_i(x) = M_{i+1}((x - b) / a)
            fit = boundaries[i]
            assert fit is not None
            scale[i], shift[i] = scale[i + 1] / fit.scale, shift[i + 1] - scale[i + 1] * fit.shift / fit.scale
        lows, highs = [], []
        for i in members:
            stats = summaries[i]["stats"]  # type: ignore[index]
            lo, hi = (stats["p1"], stats["p99"]) if robust else (stats["min"], stats["max"])
            lows.append(scale[i] * lo + shift[i])
            highs.append(scale[i] * hi + shift[i])
        low, high = min(lows), max(highs)
        if not wide_enough(low, high):  # a flat shot: any usable range gives depth 0 everywhere
            high = low + 1.0
        for i in members:
            maps[i] = SegmentMap(i, scale[i], shift[i], shot_index, i == reference, low, high)
    notes = []
    if len(shots) > 1:
        notes.append(f"{len(shots)} shots: each has its own reference segment and range")
    return Alignment(maps, boundaries, robust, notes)
