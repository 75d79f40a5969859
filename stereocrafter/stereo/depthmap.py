"""Depth maps as pure tensor maths: a long video's common scale (``AlignedDepth``, ``common_scale``),
normalisation over a range, and the resize of a depth map to the source size. Every depth model's
output goes through these (reference §1.6); nothing here knows which model made the depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stereocrafter.bounds import check_depth_range, wide_enough


@dataclass(frozen=True)
class AlignedDepth:
    """The depth a run uses on a long video's common scale (``stereocrafter.long.align``), one value
    instead of four arguments.

    - ``raw``: the clip's raw depth stored by an earlier ``depth_pass``, (T, 1, h, w) float32 (any
      h x w: it is resized to the source size); None: the run's own depth pass makes it.
    - ``scale``, ``shift``: aligned = scale * raw + shift, a reference segment's scale.
    - ``range``: (low, high) normalising the aligned depth instead of the clip's own min and max
      (values outside it are clamped); it must be wide enough for float32 (``bounds``).

    ``AlignedDepth()`` is the reference's run: the clip's own depth, normalised by its own range.
    """

    raw: torch.Tensor | None = None
    scale: float = 1.0
    shift: float = 0.0
    range: tuple[float, float] | None = None

    @property
    def mapped(self) -> bool:
        return (self.scale, self.shift) != (1.0, 0.0)

    @classmethod
    def from_fields(
        cls,
        raw: torch.Tensor | None = None,
        *,
        depth_scale: float | None = None,
        depth_shift: float | None = None,
        depth_range: Sequence[float] | None = None,
    ) -> AlignedDepth:
        """From a request's fields (or a segment's options, which carry the same names): an
        absent scale is 1, an absent shift 0, an absent range the clip's own."""
        return cls(
            raw,
            1.0 if depth_scale is None else float(depth_scale),
            0.0 if depth_shift is None else float(depth_shift),
            None if depth_range is None else (float(depth_range[0]), float(depth_range[1])),
        )


def common_scale(raw: torch.Tensor, aligned: AlignedDepth) -> tuple[torch.Tensor, float, float]:
    """The clip's raw depth (T, 1, h, w) on the common scale of a long video, and the (low, high)
    that normalise it (``AlignedDepth``'s map and range): scale * raw + shift, and the given range,
    which must be wide enough for float32 (``bounds.check_depth_range``), or the clip's own min
    and max (the reference). ``aligned.raw`` is not read: ``raw`` is the depth in hand."""
    if aligned.mapped:
        raw = raw * aligned.scale + aligned.shift
    if aligned.range is None:
        return raw, float(raw.min()), float(raw.max())
    low, high = float(aligned.range[0]), float(aligned.range[1])
    check_depth_range(low, high)
    return raw, low, high


def normalise(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(raw - low) / (high - low), not clamped (values outside the range fall outside [0, 1]).
    A range too narrow for float32 (``bounds.wide_enough``; a clip whose depth is flat) gives
    zeros, where the reference's min-max normalisation gives NaN."""
    if not wide_enough(low, high):
        return torch.zeros_like(raw)
    return (raw - low) / (high - low)


def resize_depth(depth: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 1, h, w) -> (T, 1, H0, W0), bilinear with align_corners=False, float32 (reference §1.6)."""
    return F.interpolate(depth.float(), size=size, mode="bilinear", align_corners=False)


def normalize_depth(depth: torch.Tensor) -> torch.Tensor:
    """Min-max normalisation over the whole video to [0, 1] (1 = near, reference §1.6).

    A constant depth map (max == min) becomes all zeros instead of the reference's NaN.
    """
    low, high = depth.min(), depth.max()
    span = high - low
    if float(span) == 0.0:
        return torch.zeros_like(depth)
    return (depth - low) / span
