"""``jobs.publish``: the report's two files, written in one place for every job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.context import Job
from stereocrafter.jobs.publish import report_extra, write_report
from stereocrafter.jobs.report import QualityReport


def _report() -> QualityReport:
    report = QualityReport()
    config = StereoConfig.from_preset("fast")
    report.on_start(num_frames=4, width=32, height=24, config=config, depth_range=(0.0, 1.0), seams=[])
    left = torch.rand(4, 3, 24, 32, generator=torch.Generator().manual_seed(0))
    depth = torch.rand(4, 1, 24, 32, generator=torch.Generator().manual_seed(1))
    occlusion = (torch.rand(4, 1, 24, 32, generator=torch.Generator().manual_seed(2)) > 0.9).float()
    report.on_frames(0, left, depth, occlusion, left.flip(-1))
    return report


def test_the_report_says_its_preset_timings_and_weights(tmp_path: Path) -> None:
    job = Job(config=StereoConfig.from_preset("fast"), tiny=True, timings={"depth": 1.23456})
    write_report(_report(), job, tmp_path / "r.json", tmp_path / "r.png", {"codec": "libx264"})
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["preset"] == "fast" and data["tiny_weights"] is True
    assert data["timings"] == {"depth": 1.235} and data["encoder"] == {"codec": "libx264"}
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report_extra(Job())["preset"] == "reference"
    assert data["commercial_use"] is False and "research use only" in data["models"]["depthcrafter"]
    clean = report_extra(Job(config=StereoConfig.from_preset("clean")))
    assert clean["commercial_use"] is True
    assert clean["models"] == {"vda-small": "Apache-2.0", "migan": "MIT (MI-GAN LICENSE-WEIGHTS)"}


def test_a_report_that_could_not_be_computed_writes_nothing(tmp_path: Path) -> None:
    report = QualityReport()
    report.error = "ValueError: a test"
    with pytest.raises(RuntimeError, match="could not be computed"):
        write_report(report, Job(), tmp_path / "r.json", tmp_path / "r.png")
    assert list(tmp_path.iterdir()) == []
