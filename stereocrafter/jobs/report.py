"""What a conversion did, measured from what the pipeline already holds: a stereo quality report.

``QualityReport`` is an observer of ``StereoPipeline.run``: it is told the clip's size, config,
depth-normalisation range and inpainting chunk seams once, then sees every composed chunk's left
view, normalised depth, occlusion and final right view. It keeps a few numbers per frame and a few
small thumbnails, never the frames, and answers with a JSON-ready dict (``as_dict``); the contact
sheet is drawn by ``report_image``.

Definitions (also in docs/reports-and-metrics.md's table):
- disparity (px) = (2 * depth - 1) * max_disp, as the splat uses it; positive = nearer than the
  zero-parallax plane, i.e. in front of the screen (the right view moves it left). Per frame: min
  and max (exact), 1st and 99th percentiles of every pixel from a histogram of ``BIN_PX``-wide bins
  over [-max_disp, max_disp] (one ``bincount`` per frame on the device, no sort of the 2M values
  of a 1080p frame): each order statistic is taken at the centre of its bin, so a percentile is
  within ``BIN_PX`` / 2 = 0.008 px (plus float32 rounding, under 1e-5 px) of numpy's exact
  ``percentile`` (linear interpolation), and never outside the frame's min and max. For the clip:
  min, max, and exact percentiles of a fixed subsample of each frame's pixels pooled.
- comfort: a frame is over budget when its disparity spread (99th - 1st percentile) exceeds
  ``COMFORT_BUDGET`` of the width. 3 % is the usual total budget for TV-sized screens (the "1/30"
  rule of thumb and broadcasters' limits of about 1 % in front of the screen and 2 % behind).
- holes: share of pixels with occlusion >= 0.5 (the inpainting's own binarisation).
- seam stability: mean absolute change of the right view's mean luma (BT.709, 0-255) between
  consecutive frames, at the inpainting's chunk seams (the first frame a later chunk keeps)
  against inside chunks; their ratio flags right-eye brightness pulsing at the chunk period.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F

COMFORT_BUDGET = 0.03  # of the width: the whole disparity spread of a frame
THUMBNAIL_WIDTH = 240
SUBSAMPLE = 4096  # pixels per frame pooled for the clip's percentiles
BIN_PX = 0.016  # disparity histogram bin (px): per-frame percentiles within 0.008 px of exact
LUMA = (0.2126, 0.7152, 0.0722)


class QualityReport:
    """Collects the report while ``StereoPipeline.run`` converts (pass it as ``observer``)."""

    def __init__(self, thumbnails: int = 4) -> None:
        self.error: str | None = None  # a failure here never fails the conversion: it is kept here
        self.thumbnails_wanted = thumbnails
        self.frames: list[dict[str, float]] = []
        self.thumbnails: dict[int, dict[str, torch.Tensor]] = {}  # frame -> panel -> (3, h, w) uint8
        self._pooled: list[torch.Tensor] = []
        self._index: torch.Tensor | None = None  # reused histogram buffers (``_percentiles``)
        self._scaled: torch.Tensor | None = None
        self._mask: torch.Tensor | None = None  # reused hole mask of one frame
        self.info: dict[str, Any] = {}

    # -- the observer protocol -------------------------------------------------------------------

    def on_start(self, **facts: Any) -> None:
        self._guarded(self._start, **facts)

    def on_frames(self, *tensors: Any) -> None:
        self._guarded(self._frames, *tensors)

    def _guarded(self, step: Any, *args: Any, **kwargs: Any) -> None:
        if self.error is not None:
            return
        try:
            step(*args, **kwargs)
        except Exception as err:
            self.error = f"{type(err).__name__}: {err}"[:300]

    def _start(self, *, num_frames: int, width: int, height: int, config: Any,
               depth_range: tuple[float, float], seams: list[int]) -> None:  # fmt: skip
        self.max_disp = float(config.max_disp)
        self.width, self.height = width, height
        self.seams = sorted(seams)
        self.info = {
            "num_frames": num_frames,
            "width": width,
            "height": height,
            "config": asdict(config),
            "depth_range": {"low": depth_range[0], "high": depth_range[1]},
            "seams": self.seams,
        }
        count = min(self.thumbnails_wanted, num_frames)
        self._thumb_at = sorted({round(i * (num_frames - 1) / max(count - 1, 1)) for i in range(count)})

    def _frames(self, start: int, left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor,
                right: torch.Tensor) -> None:  # fmt: skip
        """left, right (n, 3, H, W) in [0, 1]; depth (n, 1, H, W) normalised in [0, 1]; occlusion
        (n, 1, H, W), 1 = hole. Frames ``start .. start + n``, in order."""
        flat = depth.float().flatten(1)  # (n, H*W); the disparity is (2 depth - 1) max_disp
        # two passes beat one ``aminmax`` here (1.1 against 3.2 ms a 1080p frame on the CPU)
        ends = torch.stack([flat.amin(dim=1), flat.amax(dim=1)])  # (2, n) depth min and max
        low, high = (2.0 * ends - 1.0) * self.max_disp
        percentiles = self._percentiles(flat, ends)  # (2, n)
        # per frame, into a reused mask: a ``count_nonzero`` of one frame beats one over the chunk
        # by 8x on the CPU
        if (
            self._mask is None
            or self._mask.shape != occlusion[0].shape
            or self._mask.device != occlusion.device
        ):
            self._mask = torch.empty(occlusion[0].shape, dtype=torch.bool, device=occlusion.device)
        mask = self._mask
        holes = torch.stack([torch.count_nonzero(torch.ge(frame, 0.5, out=mask)) for frame in occlusion])
        holes = holes / occlusion[0].numel()
        # mean luma = the luma of the mean colour (linear): three means, no per-pixel product
        weights = torch.tensor(LUMA, device=right.device)
        luma = right.float().mean(dim=(2, 3)) @ weights * 255.0
        step = max(1, flat.shape[1] // SUBSAMPLE)
        self._pooled.append(((2.0 * flat[:, ::step] - 1.0) * self.max_disp).cpu())
        rows = torch.stack([low, high, percentiles[0], percentiles[1], holes.float(), luma]).T.cpu()
        for offset, (low, high, p1, p99, hole, bright) in enumerate(rows.tolist()):
            self.frames.append(
                {"frame": start + offset, "min": low, "max": high, "p1": p1, "p99": p99,
                 "hole_ratio": hole, "luma": bright}
            )  # fmt: skip
            if start + offset in self._thumb_at:
                self.thumbnails[start + offset] = _thumbnail_panels(
                    left[offset], depth[offset], occlusion[offset], right[offset]
                )

    def _percentiles(self, depth: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """(2, n) disparity percentiles 1 and 99 of each row of ``depth`` (n, m), within ``BIN_PX``
        / 2 of numpy's linear ones (the module docstring), from one histogram per frame over
        [-max_disp, max_disp], i.e. depth [0, 1]: bin = floor(depth x 2 max_disp / BIN_PX). The
        bin index is written into a reused int16 buffer (no allocation per frame; bins + 1 <= 12,501
        at ``bounds.MAX_DISP``, and int16 counts 10 % faster than int32 on the CPU). A row with depth
        outside [0, 1] (never from the pipeline, which clamps it) is sorted instead."""
        bound = self.max_disp
        bins = max(1, math.ceil(2 * bound / BIN_PX))
        if bins >= torch.iinfo(torch.int16).max:  # max_disp over 262 px: beyond every bound we accept
            raise ValueError(f"max_disp {bound} px needs {bins} histogram bins, more than int16 indexes")
        count = depth.shape[1]
        positions = [level * (count - 1) for level in (0.01, 0.99)]
        ranks = torch.tensor(
            [r for p in positions for r in (math.floor(p), math.ceil(p))], device=depth.device
        )
        fractions = torch.tensor([p - math.floor(p) for p in positions], device=depth.device).double()
        if (
            self._index is None
            or self._scaled is None
            or self._index.shape != (count,)
            or (self._index.device != depth.device)
        ):
            self._index = torch.empty(count, dtype=torch.int16, device=depth.device)
            self._scaled = torch.empty(count, dtype=torch.float32, device=depth.device)
        index, scaled = self._index, self._scaled
        lows, highs = ((2.0 * ends.double() - 1.0) * bound).unbind(0)  # (n,) each, px
        inside = ((ends[0] >= 0.0) & (ends[1] <= 1.0)).tolist()
        # one extra bin holds depth == 1.0 exactly (index ``bins``), so no clamp pass is needed:
        # its centre lies beyond ``bound`` and the clamp to the frame's max below puts it there
        counts = torch.zeros(depth.shape[0], bins + 1, dtype=torch.int64, device=depth.device)
        for row, ok in enumerate(inside):
            if ok:
                torch.mul(depth[row], 2 * bound / BIN_PX, out=scaled)
                index.copy_(scaled)  # truncation = floor (>= 0)
                counts[row] = torch.bincount(index, minlength=bins + 1)
        cumulative = counts.cumsum(1)
        found = torch.searchsorted(cumulative, ranks.expand(len(inside), 4).contiguous(), right=True)
        centres = -bound + (found.double() + 0.5) * BIN_PX  # order stat r: first bin holding > r
        centres = torch.minimum(torch.maximum(centres, lows[:, None]), highs[:, None]).view(-1, 2, 2)
        out = (centres[..., 0] * (1 - fractions) + centres[..., 1] * fractions).float().T.contiguous()
        for row, ok in enumerate(inside):
            if not ok:  # depth outside [0, 1]: never from the pipeline (it clamps); sorted instead
                disparity = (2.0 * depth[row : row + 1] - 1.0) * bound
                out[:, row] = _quantiles(disparity, torch.tensor([0.01, 0.99]))[:, 0]
        return out

    # -- results ---------------------------------------------------------------------------------

    def seam_stability(self) -> dict[str, float | int | None]:
        """Mean |change of mean luma| between consecutive frames at seams and inside chunks."""
        lumas = [f["luma"] for f in sorted(self.frames, key=lambda f: f["frame"])]
        seams = set(self.seams)
        at_seams = [abs(lumas[t] - lumas[t - 1]) for t in range(1, len(lumas)) if t in seams]
        inside = [abs(lumas[t] - lumas[t - 1]) for t in range(1, len(lumas)) if t not in seams]
        seam_mean = sum(at_seams) / len(at_seams) if at_seams else None
        inside_mean = sum(inside) / len(inside) if inside else None
        ratio = seam_mean / inside_mean if seam_mean is not None and inside_mean else None
        return {"seams": len(at_seams), "seam_luma_change": seam_mean, "inside_luma_change": inside_mean,
                "ratio": ratio}  # fmt: skip

    def clip(self) -> dict[str, Any]:
        """The clip-level figures (also returned in the service's response)."""
        if not self.frames:
            return {}
        pooled = torch.cat([p.flatten() for p in self._pooled])
        p1, p99 = _quantiles(pooled[None], torch.tensor([0.01, 0.99]))[:, 0].tolist()
        width = float(self.width)
        budget_px = COMFORT_BUDGET * width
        over = sum(1 for f in self.frames if f["p99"] - f["p1"] > budget_px)
        low = min(f["min"] for f in self.frames)
        high = max(f["max"] for f in self.frames)
        holes = [f["hole_ratio"] for f in self.frames]
        return {
            "disparity_px": {"min": low, "max": high, "p1": p1, "p99": p99},
            "disparity_percent_of_width": {k: 100 * v / width for k, v in
                                           {"min": low, "max": high, "p1": p1, "p99": p99}.items()},
            "comfort": {"budget_percent_of_width": 100 * COMFORT_BUDGET, "budget_px": budget_px,
                        "frames_over_budget": over, "share_over_budget": over / len(self.frames)},
            "hole_ratio": {"mean": sum(holes) / len(holes), "max": max(holes)},
            "seam_stability": self.seam_stability(),
        }  # fmt: skip

    def as_dict(self, **extra: Any) -> dict[str, Any]:
        """The whole report: ``extra`` (preset, versions, timings, ...), the run's parameters, the
        clip's figures and one row per frame (disparity in px and % of width, holes, luma)."""
        width = float(self.width)
        frames = [
            {**f, **{f"{k}_percent": 100 * f[k] / width for k in ("min", "max", "p1", "p99")}}
            for f in sorted(self.frames, key=lambda f: f["frame"])
        ]
        return {**extra, **self.info, "clip": self.clip(), "frames": _finite(frames)}


def _quantiles(values: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """(k, n) quantiles of each row of ``values`` (n, m); linear interpolation, any size."""
    ordered = values.sort(dim=1).values
    positions = levels.to(ordered.device).double() * (ordered.shape[1] - 1)
    below = positions.floor().long()
    above = positions.ceil().long()
    fraction = (positions - below.double()).float()[:, None]
    return ordered[:, below].T * (1 - fraction) + ordered[:, above].T * fraction


def _thumbnail_panels(left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor,
                      right: torch.Tensor) -> dict[str, torch.Tensor]:  # fmt: skip
    height, width = left.shape[-2:]
    size = (max(1, round(height * THUMBNAIL_WIDTH / width)), THUMBNAIL_WIDTH)

    def small(x: torch.Tensor) -> torch.Tensor:
        shrunk = F.interpolate(x[None].float(), size=size, mode="area")[0]
        return (shrunk.clamp(0, 1) * 255).round().to(torch.uint8).cpu()

    return {"left": small(left), "depth": small(depth), "holes": small((occlusion >= 0.5).float()),
            "right": small(right)}  # fmt: skip


def _finite(rows: list[dict[str, float]]) -> list[dict[str, float | None]]:
    """JSON has no NaN: such values become null."""
    return [
        {k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in r.items()} for r in rows
    ]
