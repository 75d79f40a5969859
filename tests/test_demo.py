"""``demo``: the whole service path on one machine, through the local stack (slow: a real server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.demo import main


@pytest.mark.slow
def test_the_demo_converts_a_clip_through_the_local_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main([str(tmp_path), "--mode", "sbs"]) == 0
    out = capsys.readouterr().out
    assert "POST /invocations -> 200" in out and "TINY RANDOM WEIGHTS" in out
    assert (tmp_path / "sample_sbs.mp4").stat().st_size > 0
