"""``jobs.report_image``: the report's PNG contact sheet and its layout."""

from __future__ import annotations

import numpy as np
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.report import QualityReport
from stereocrafter.jobs.report_image import PANELS, contact_sheet
from stereocrafter.testing.planes import default_planes, render

MAX_DISP = 20.0
PERCENTILE_BOUND = 0.008 + 1e-5  # the bound report.py states (BIN_PX / 2), float32 rounding included


def observe(
    report: QualityReport, clip: dict[str, torch.Tensor], seams: list[int], right: torch.Tensor
) -> None:
    frames, _, height, width = clip["left"].shape
    report.on_start(num_frames=frames, width=width, height=height, config=StereoConfig(max_disp=MAX_DISP),
                    depth_range=(0.1, 0.9), seams=seams)  # fmt: skip
    for start in range(0, frames, 4):  # in chunks, as the pipeline hands them over
        end = start + 4
        report.on_frames(start, clip["left"][start:end], clip["depth"][start:end],
                         clip["occlusion"][start:end], right[start:end])  # fmt: skip


def planes_clip(frames: int = 6, height: int = 70, width: int = 160) -> dict[str, torch.Tensor]:
    scene = render(default_planes(), height, width)
    disparity = scene["disparity"].float()  # (1, H, W) px, planes at -6.3, 2.7 and 12.4
    depth = (disparity / MAX_DISP + 1) / 2  # what the splat turns back into that disparity
    repeat = (frames, 1, 1, 1)
    return {
        "left": scene["left"].float().clamp(0, 1)[None].repeat(repeat),
        "depth": depth[None].repeat(repeat),
        "occlusion": scene["holes"].float()[None].repeat(repeat),
        "disparity": disparity,
        "holes": scene["holes"],
    }


def test_contact_sheet_layout() -> None:
    clip = planes_clip(frames=10)
    report = QualityReport(thumbnails=3)
    observe(report, clip, [5], clip["left"])
    sheet = contact_sheet(report, "test")
    assert sorted(report.thumbnails) == [0, 4, 9]  # evenly across the clip, first and last included
    assert sheet.size == (2 * 8 + 4 * 240 + 3 * 4, 8 + 18 + 3 * (105 + 4) + 150 + 8)
    pixels = np.asarray(sheet)
    row = 8 + 18 + 50  # the middle of the first row of panels
    for i, name in enumerate(PANELS):
        x = 8 + i * 244 + 120
        assert pixels[row, x].tolist() != [255, 255, 255], name  # every panel is drawn
    holes = pixels[8 + 18 + 20 : 8 + 18 + 105, 8 + 2 * 244 : 8 + 2 * 244 + 240]  # (below the label)
    assert (holes == 0).all(axis=-1).any() and (holes == 255).all(axis=-1).any()  # black, white holes
