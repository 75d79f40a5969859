"""The quality report: figures checked against an analytic scene, the seam figure, the drawing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.report import COMFORT_BUDGET, QualityReport
from tests.support.report import MAX_DISP, observe, planes_clip

PERCENTILE_BOUND = 0.008 + 1e-5  # the bound report.py states (BIN_PX / 2), float32 rounding included


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
        for key, value in expected.items():  # min and max exact; percentiles within the stated bound
            bound = 1e-4 if key in ("min", "max") else PERCENTILE_BOUND
            assert row[key] == pytest.approx(value, abs=bound), key
            assert row[f"{key}_percent"] == pytest.approx(100 * value / 160, abs=100 * bound / 160)
        assert row["hole_ratio"] == pytest.approx(float(clip["holes"].float().mean()), abs=1e-6)
    figures = data["clip"]
    assert figures["disparity_px"]["min"] == pytest.approx(-6.3, abs=1e-4)
    assert figures["disparity_px"]["max"] == pytest.approx(12.4, abs=1e-4)
    # the spread (p99 - p1) of 18.7 px is over 3 % of 160 px (4.8 px) in every frame
    assert figures["comfort"]["budget_px"] == pytest.approx(COMFORT_BUDGET * 160)
    assert figures["comfort"]["frames_over_budget"] == 6 and figures["comfort"]["share_over_budget"] == 1.0
    assert data["depth_range"] == {"low": 0.1, "high": 0.9} and data["preset"] == "reference"


@pytest.mark.parametrize("max_disp", [20.0, 3.0, 100.0])
def test_per_frame_percentiles_are_within_the_stated_bound_of_numpy(max_disp: float) -> None:
    """On a continuous field (every pixel a different disparity: a slope, ripples, noise and a
    plane), at 1080p's pixel count per frame, numpy's exact percentiles against the histogram's."""
    frames, height, width = 3, 540, 960
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    t = torch.arange(frames).view(frames, 1, 1, 1)
    generator = torch.Generator().manual_seed(1)
    noise = torch.rand(frames, 1, height, width, generator=generator)
    depth = (0.2 + 0.5 * x * y + 0.05 * torch.sin(40 * x + t) + 0.1 * noise).clamp(0, 1)
    depth[..., : height // 5, :] = 0.93  # a plane: many equal values at one end
    report = QualityReport()
    report.on_start(num_frames=frames, width=width, height=height, config=StereoConfig(max_disp=max_disp),
                    depth_range=(0.0, 1.0), seams=[])  # fmt: skip
    rgb = torch.zeros(frames, 3, height, width)
    report.on_frames(0, rgb, depth, torch.zeros_like(depth), rgb)
    assert report.error is None
    for frame, row in enumerate(report.frames):
        truth = ((2 * depth[frame].double() - 1) * max_disp).numpy().ravel()
        for key, level in (("p1", 1), ("p99", 99)):
            exact = np.percentile(truth, level)
            assert abs(row[key] - exact) <= PERCENTILE_BOUND, (key, row[key], exact)
        assert row["min"] == pytest.approx(truth.min(), abs=1e-5) and row["max"] == pytest.approx(
            truth.max(), abs=1e-5
        )


def test_disparities_outside_the_histogram_are_sorted_exactly() -> None:
    """A depth outside [0, 1] (the pipeline clamps it; the report does not rely on that)."""
    depth = torch.linspace(-0.5, 1.5, 10_000).view(1, 1, 100, 100)
    report = QualityReport()
    report.on_start(num_frames=1, width=100, height=100, config=StereoConfig(max_disp=MAX_DISP),
                    depth_range=(0.0, 1.0), seams=[])  # fmt: skip
    rgb = torch.zeros(1, 3, 100, 100)
    report.on_frames(0, rgb, depth, torch.zeros_like(depth), rgb)
    truth = ((2 * depth.double() - 1) * MAX_DISP).numpy().ravel()
    assert report.frames[0]["p1"] == pytest.approx(np.percentile(truth, 1), abs=1e-4)
    assert report.frames[0]["p99"] == pytest.approx(np.percentile(truth, 99), abs=1e-4)


def test_a_chunk_mixing_the_range_ends_and_a_frame_outside_it() -> None:
    """Depth exactly 0 and 1 (the histogram's first and extra last bin) beside a frame outside
    [0, 1] (sorted) and a frame in between, in one chunk: each row within the bound of numpy."""
    ramp = torch.linspace(0, 1, 10_000).view(1, 100, 100)
    ends = ramp.clone()
    ends.view(-1)[:600] = 0.0  # 6 % at each end: the 1st and 99th percentiles sit on the ends
    ends.view(-1)[-600:] = 1.0
    depth = torch.stack([ends, ramp * 2 - 0.5, 0.25 + 0.5 * ramp])  # (3, 1, 100, 100)
    report = QualityReport()
    report.on_start(num_frames=3, width=100, height=100, config=StereoConfig(max_disp=MAX_DISP),
                    depth_range=(0.0, 1.0), seams=[])  # fmt: skip
    rgb = torch.zeros(3, 3, 100, 100)
    report.on_frames(0, rgb, depth, torch.zeros_like(depth), rgb)
    assert report.error is None
    for frame, row in enumerate(report.frames):
        truth = ((2 * depth[frame].double() - 1) * MAX_DISP).numpy().ravel()
        assert abs(row["p1"] - np.percentile(truth, 1)) <= PERCENTILE_BOUND, frame
        assert abs(row["p99"] - np.percentile(truth, 99)) <= PERCENTILE_BOUND, frame
    assert report.frames[0]["p99"] == pytest.approx(MAX_DISP, abs=1e-5)  # the extra bin, at the max


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


def test_a_failure_inside_the_report_never_reaches_the_conversion() -> None:
    clip = planes_clip()
    report = QualityReport()
    observe(report, clip, [], clip["left"])
    two_channels = clip["left"][:1, :2]  # a malformed right view: the luma cannot be taken
    report.on_frames(6, clip["left"][:1], clip["depth"][:1], clip["occlusion"][:1], two_channels)
    assert report.error is not None  # kept, not raised
    report.on_frames(7, clip["left"][:1], clip["depth"][:1], clip["occlusion"][:1], clip["left"][:1])
    assert len(report.frames) == 6  # and the report stops there
