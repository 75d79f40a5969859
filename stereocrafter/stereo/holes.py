"""Where a right view's holes lie, for the fill (``stereo.fill``): the hole pixels listed, the
known pixels on either side of each (from that list, or for every pixel on whole planes), and the
running scans of the fill's memory over a stack of "seen" stamps."""

from __future__ import annotations

from typing import NamedTuple

import torch


def nearest_known(
    known: torch.Tensor, dim: int = -1, dtype: torch.dtype = torch.int16
) -> tuple[torch.Tensor, torch.Tensor]:
    """known bool -> planes along ``dim`` (``dtype``; int32 when the side is too long for int16):
    the index of the nearest known pixel at or before each pixel (-1: none) and at or after it (the
    length: none)."""
    n = known.shape[dim]
    dtype = dtype if n < torch.iinfo(dtype).max else torch.int32
    shape = [1] * known.ndim
    shape[dim] = n
    pos = torch.arange(n, dtype=dtype, device=known.device).view(shape)
    before = torch.where(known, pos, -1).cummax(dim).values
    after = (n - 1) - torch.where(known.flip(dim), pos, -1).cummax(dim).values.flip(dim)
    return before, after


class HolePixels(NamedTuple):
    """A chunk's hole pixels, in order: flat index into (t, h, w), frame, row, column, and the flat
    index of the row's first pixel."""

    p: torch.Tensor
    f: torch.Tensor
    y: torch.Tensor
    x: torch.Tensor
    row: torch.Tensor


def hole_pixels(holes: torch.Tensor) -> HolePixels:
    """holes (t, 1, h, w) bool -> ``HolePixels`` (int64 vectors; the one read-back: their number)."""
    _, _, h, w = holes.shape
    p = holes.reshape(-1).nonzero()[:, 0]
    f = torch.div(p, h * w, rounding_mode="floor")
    y = torch.div(p - f * (h * w), w, rounding_mode="floor")
    x = p - f * (h * w) - y * w
    return HolePixels(p, f, y, x, p - x)


def run_sides(at: HolePixels) -> tuple[torch.Tensor, torch.Tensor]:
    """The nearest known column to each hole pixel's left in its row (-1: none) and to its right
    (the width: none): the columns just outside its run of consecutive hole pixels, found on the
    (sorted) list of hole pixels instead of two running extrema over whole planes."""
    p, x = at.p, at.x
    starts = torch.cat([torch.ones_like(p[:1], dtype=torch.bool), (p[1:] != p[:-1] + 1) | (x[1:] == 0)])
    run = starts.cumsum(0) - 1  # each pixel's run, numbered in order
    order = torch.arange(p.shape[0], device=p.device)
    first = torch.zeros_like(p).scatter_reduce(0, run, order, "amin", include_self=False)
    last = torch.zeros_like(p).scatter_reduce(0, run, order, "amax", include_self=False)
    return x[first[run]] - 1, x[last[run]] + 1


def latest_seen(canvas: torch.Tensor, t: int) -> torch.Tensor:
    """Plane i: the latest of ids 0 .. i that saw each canvas pixel (-1: none). Plane j of the
    canvas holds id j or -1, so this is a running maximum: one op a plane, not ``cummax``, which
    also writes an int64 index a pixel (twice the bytes)."""
    out = torch.empty_like(canvas[:t])
    out[0] = canvas[0]
    for i in range(1, t):
        torch.maximum(out[i - 1], canvas[i], out=out[i])
    return out


def next_seen(canvas: torch.Tensor, t: int) -> torch.Tensor:
    """Plane i (0 .. t - 2): the earliest of ids i + 2 .. t that saw each canvas pixel (t + 1:
    none): a running minimum from the last plane back, which is the nearer plane's id wherever it
    saw the pixel. One op a plane, not two flips around ``cummin`` (a third of the bytes)."""
    out = torch.empty_like(canvas[2:])
    prior = torch.full((), t + 1, dtype=canvas.dtype, device=canvas.device)
    for i in range(t - 2, -1, -1):
        seen = canvas[i + 2]
        prior = torch.where(seen >= 0, seen, prior, out=out[i])
    return out
