"""``serving.faults``: the fault injector the GPU-failure tests plant faults with."""

from __future__ import annotations

from pathlib import Path

from stereocrafter.serving.faults import Faults


def test_the_fault_file_is_consumed_one_line_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    faults = Faults(path)
    assert not faults.take("oom")  # no file: nothing pending
    path.write_text("overflow\noom\noverflow\n")
    assert not faults.take("cuda_fatal")
    assert faults.take("overflow") and faults.take("oom") and not faults.take("oom")
    assert path.read_text() == "overflow\n"
