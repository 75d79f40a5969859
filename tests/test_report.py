"""The quality report: figures checked against an analytic scene, the seam figure, the drawing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereocrafter.pipeline import StereoConfig
from stereocrafter.report import COMFORT_BUDGET, QualityReport
from stereocrafter.report_image import PANELS, contact_sheet
from tests.scene import default_planes, render

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


def test_disparity_figures_match_the_analytic_scene() -> None:
    clip = planes_clip()
    report = QualityReport()
    observe(report, clip, [], clip["left"])
    assert report.error is None
    truth = clip["disparity"].double().numpy().ravel()
    expected = {
        "min": truth.min(),
        "max": truth.max(),
        "p1": np.percentile(truth, 1),  # computed here, independently (numpy, linear)
        "p99": np.percentile(truth, 99),
    }
    assert (expected["min"], expected["max"]) == pytest.approx((-6.3, 12.4), abs=1e-4)
    data = report.as_dict(preset="reference")
    for row in data["frames"]:
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=1e-3), key
            assert row[f"{key}_percent"] == pytest.approx(100 * value / 160, abs=1e-3)
        assert row["hole_ratio"] == pytest.approx(float(clip["holes"].float().mean()), abs=1e-6)
    figures = data["clip"]
    assert figures["disparity_px"]["min"] == pytest.approx(-6.3, abs=1e-4)
    assert figures["disparity_px"]["max"] == pytest.approx(12.4, abs=1e-4)
    # the spread (p99 - p1) of 18.7 px is over 3 % of 160 px (4.8 px) in every frame
    assert figures["comfort"]["budget_px"] == pytest.approx(COMFORT_BUDGET * 160)
    assert figures["comfort"]["frames_over_budget"] == 6 and figures["comfort"]["share_over_budget"] == 1.0
    assert data["depth_range"] == {"low": 0.1, "high": 0.9} and data["preset"] == "reference"


def test_the_seam_figure_flags_a_brightness_step_at_a_chunk_seam() -> None:
    clip = planes_clip(frames=40)
    drift = 0.5 + 0.002 * torch.arange(40).view(40, 1, 1, 1)  # a slow, even brightening
    smooth = (clip["left"] * 0 + drift).clamp(0, 1)
    stepped = smooth.clone()
    stepped[20:] += 0.08  # the right eye jumps at the seam, as users of the reference report
    figures = {}
    for name, right in (("smooth", smooth), ("stepped", stepped)):
        report = QualityReport()
        observe(report, clip, [20], right)
        figures[name] = report.seam_stability()
    assert figures["stepped"]["seams"] == 1
    assert figures["smooth"]["ratio"] == pytest.approx(1.0, abs=0.05)
    assert figures["stepped"]["ratio"] > 10 * figures["smooth"]["ratio"]


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


def test_a_failure_inside_the_report_never_reaches_the_conversion() -> None:
    clip = planes_clip()
    report = QualityReport()
    observe(report, clip, [], clip["left"])
    two_channels = clip["left"][:1, :2]  # a malformed right view: the luma cannot be taken
    report.on_frames(6, clip["left"][:1], clip["depth"][:1], clip["occlusion"][:1], two_channels)
    assert report.error is not None  # kept, not raised
    report.on_frames(7, clip["left"][:1], clip["depth"][:1], clip["occlusion"][:1], clip["left"][:1])
    assert len(report.frames) == 6  # and the report stops there
