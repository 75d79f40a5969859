"""``jobs.context``: one job's context: its working folder, its timings, its encoding."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from stereocrafter.config import StereoConfig
from stereocrafter.guard import NO_STOP
from stereocrafter.jobs.context import Encoding, Job
from stereocrafter.settings import load_settings


def test_the_working_folder_is_named_after_the_request_and_always_removed(tmp_path: Path) -> None:
    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_WORK_DIR": str(tmp_path)})
    job = Job(config=StereoConfig.from_preset("fast"), request_id="abc123", settings=settings)
    try:
        with job.folder() as folder:
            assert folder.parent == tmp_path and folder.name.startswith("job-abc123-")
            (folder / "input").write_bytes(b"x")
            raise RuntimeError("the job failed")
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []
    assert job.config.preset == "fast" and job.stop is NO_STOP


def test_timings_and_the_default_encoding() -> None:
    job = Job()
    job.timed("download", time.perf_counter() - 0.25)
    assert 0.2 < job.timings["download"] < 5
    described = Encoding().describe()
    assert described["codec"] == "libx264" and Encoding(quality=23).quality == 23
    assert "libx264" in Encoding().label()


def test_a_job_knows_how_long_it_held_its_slot_and_its_share_of_the_price() -> None:
    an_hour_ago = Job(held_since=time.monotonic() - 3600, slot_hour_price=2.5)
    assert an_hour_ago.gpu_seconds() == pytest.approx(3600, abs=1) and an_hour_ago.cost() == pytest.approx(
        2.5, abs=1e-3
    )
    assert Job().cost() is None and 0 <= Job().gpu_seconds() < 1
