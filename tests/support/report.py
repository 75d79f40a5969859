"""The analytic planes scene as a report sees it, and a report fed with it (the report tests)."""

from __future__ import annotations

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.report import QualityReport
from stereocrafter.testing.planes import default_planes, render

MAX_DISP = 20.0


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
