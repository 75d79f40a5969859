"""The report's contact sheet, drawn with Pillow only (already in the image: no matplotlib there).

Layout (``contact_sheet``): a title line; one row per sampled frame, each with four panels of
``report.THUMBNAIL_WIDTH`` px: left view | depth (a black-purple-orange-yellow colour ramp, near =
bright) | holes (white) | right view; under them a plot over the whole clip of the disparity's 1st
and 99th percentiles (px, left axis) and the hole ratio (right axis), with the inpainting chunk
seams as dotted vertical lines.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
from PIL import Image, ImageDraw

from stereocrafter.jobs.report import THUMBNAIL_WIDTH, QualityReport

PANELS = ("left", "depth", "holes", "right")
GAP, MARGIN, TITLE_H, PLOT_H = 4, 8, 18, 150
# Colour ramp for depth: (position, RGB) anchors, linearly interpolated.
RAMP = (
    (0.0, (0, 0, 4)),
    (0.3, (90, 20, 110)),
    (0.6, (210, 70, 50)),
    (0.85, (250, 160, 20)),
    (1.0, (252, 250, 170)),
)
BACKGROUND, INK = (255, 255, 255), (30, 30, 30)
P1_COLOUR, P99_COLOUR, HOLE_COLOUR, SEAM_COLOUR = (40, 90, 200), (200, 60, 40), (40, 150, 60), (150, 150, 150)


def ramp(values: torch.Tensor) -> torch.Tensor:
    """(1, h, w) uint8 -> (3, h, w) uint8 through ``RAMP``."""
    v = values.float()[0] / 255.0
    out = torch.zeros(3, *v.shape)
    for (x0, c0), (x1, c1) in itertools.pairwise(RAMP):
        inside = (v >= x0) & (v <= x1)
        t = ((v - x0) / (x1 - x0)).clamp(0, 1)
        for ch in range(3):
            out[ch] = torch.where(inside, c0[ch] + (c1[ch] - c0[ch]) * t, out[ch])
    return out.round().to(torch.uint8)


def _image(chw: torch.Tensor) -> Image.Image:
    if chw.shape[0] == 1:
        chw = chw.expand(3, -1, -1)
    return Image.fromarray(chw.permute(1, 2, 0).contiguous().numpy(), "RGB")


def contact_sheet(report: QualityReport, title: str = "") -> Image.Image:
    frames = sorted(report.thumbnails)
    row_h = max((report.thumbnails[f]["left"].shape[1] for f in frames), default=0)
    width = 2 * MARGIN + len(PANELS) * THUMBNAIL_WIDTH + (len(PANELS) - 1) * GAP
    height = MARGIN + TITLE_H + len(frames) * (row_h + GAP) + PLOT_H + MARGIN
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((MARGIN, MARGIN), title or "stereo quality report", fill=INK)
    y = MARGIN + TITLE_H
    for frame in frames:
        panels = report.thumbnails[frame]
        for i, name in enumerate(PANELS):
            picture = ramp(panels[name]) if name == "depth" else panels[name]
            x = MARGIN + i * (THUMBNAIL_WIDTH + GAP)
            sheet.paste(_image(picture), (x, y))
            draw.text((x + 3, y + 2), f"{name} #{frame}" if i == 0 else name, fill=(255, 255, 0))
        y += row_h + GAP
    _plot(draw, report, (MARGIN, y, width - MARGIN, y + PLOT_H))
    return sheet


def _plot(draw: ImageDraw.ImageDraw, report: QualityReport, box: tuple[int, int, int, int]) -> None:
    left, top, right, bottom = box
    draw.rectangle(box, outline=INK)
    rows = sorted(report.frames, key=lambda f: f["frame"])
    if not rows:
        return
    n = len(rows)
    low = min(min(r["p1"] for r in rows), 0.0)
    high = max(max(r["p99"] for r in rows), 0.0)
    span = (high - low) or 1.0
    inner_top, inner_bottom = top + 18, bottom - 4

    def x_of(i: int) -> float:
        return left + 4 + (right - left - 8) * (i / max(n - 1, 1))

    def y_of(value: float) -> float:
        return inner_bottom - (inner_bottom - inner_top) * (value - low) / span

    for seam in report.seams:
        x = x_of(seam)
        for y0 in range(inner_top, inner_bottom, 6):
            draw.line([(x, y0), (x, min(y0 + 3, inner_bottom))], fill=SEAM_COLOUR)
    draw.line([(left, y_of(0.0)), (right, y_of(0.0))], fill=(220, 220, 220))
    for key, colour in (("p1", P1_COLOUR), ("p99", P99_COLOUR)):
        draw.line(
            [(x_of(i), y_of(r[key])) for i, r in enumerate(rows)] or [(left, top)], fill=colour, width=2
        )
    holes = [
        (x_of(i), inner_bottom - (inner_bottom - inner_top) * r["hole_ratio"]) for i, r in enumerate(rows)
    ]
    draw.line(holes, fill=HOLE_COLOUR, width=1)
    legend = (f"disparity px: p1 (blue) p99 (red), {low:.1f} .. {high:.1f};  hole ratio (green, 0..1);  "
              "seams dotted")  # fmt: skip
    draw.text((left + 4, top + 2), legend, fill=INK)


def write_png(report: QualityReport, path: str | Path, title: str = "") -> Path:
    path = Path(path)
    contact_sheet(report, title).save(path, format="PNG", optimize=True)
    return path
