"""Draws docs/report-example.png: the report of an ANALYTIC test scene, not of a conversion.

The planes of stereocrafter/testing/planes.py (a background behind the screen, two rectangles in front) drift
sideways over 46 frames; the right view and the holes are the scene's exact ones, and the right
view brightens by 8 levels from frame 23 on (the first frame the second inpainting chunk keeps) to
show what the seam figure flags. Run from the repository root: ``python docs/report_example.py``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.report import QualityReport
from stereocrafter.jobs.report_image import write_png
from stereocrafter.testing.planes import default_planes, render

ROOT = Path(__file__).resolve().parents[1]

FRAMES, HEIGHT, WIDTH, MAX_DISP, SEAM = 46, 90, 240, 20.0, 23


def main() -> None:
    report = QualityReport()
    report.on_start(num_frames=FRAMES, width=WIDTH, height=HEIGHT, config=StereoConfig(max_disp=MAX_DISP),
                    depth_range=(0.0, 1.0), seams=[SEAM])  # fmt: skip
    for t in range(FRAMES):
        planes = [replace(p, x0=p.x0 + t, x1=p.x1 + t) for p in default_planes()]
        scene = render(planes, HEIGHT, WIDTH)
        depth = (scene["disparity"].float() / MAX_DISP + 1) / 2
        right = scene["right"].float().clamp(0, 1) + (8 / 255 if t >= SEAM else 0.0)
        report.on_frames(t, scene["left"].float().clamp(0, 1)[None], depth[None],
                         scene["holes"].float()[None], right.clamp(0, 1)[None])  # fmt: skip
    assert report.error is None, report.error
    out = ROOT / "docs" / "report-example.png"
    write_png(
        report,
        out,
        title="report of an ANALYTIC test scene (stereocrafter/testing/planes.py), not a conversion",
    )
    print(out)
    print(json.dumps(report.clip(), indent=1))


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
