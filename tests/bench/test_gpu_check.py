"""bench/gpu_check.sh, as far as a CPU machine can run it: its refusal without a GPU, its budget,
the order of its rows, its exit status when a row fails, and the wheels its header lists."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_check.sh"


def _fake_tools(folder: Path, failing: str | None) -> dict[str, str]:
    """nvidia-smi that finds one card, and a python3 whose ``gpu_rows.py`` row ``failing`` exits 1."""
    folder.mkdir()
    (folder / "nvidia-smi").write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200'\n")
    (folder / "python3").write_text(
        '#!/bin/sh\necho "python3 $*"\n'
        + (f'case "$*" in *"{failing}"*) exit 1;; esac\n' if failing else "")
        + "exit 0\n"
    )
    for tool in folder.iterdir():
        tool.chmod(0o755)
    return {"PATH": f"{folder}:/usr/bin:/bin", "OUT": str(folder / "out")}


def test_without_a_gpu_it_refuses_in_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 2 and time.monotonic() - started < 30
    assert done.stdout.count("\n") == 1 and "no NVIDIA GPU here" in done.stdout and not done.stderr


def test_the_rows_fit_300_seconds_most_expensive_preset_first() -> None:
    rows = re.findall(r"^row (\w+) (\d+) ", SCRIPT.read_text(), flags=re.M)
    assert sum(int(limit) for _, limit in rows) <= 300
    names = [name for name, _ in rows]
    assert names[0] == "imports" and names[1:4] == ["reference", "fast", "turbo"]
    assert "timeout " in SCRIPT.read_text() and "--smoke" not in SCRIPT.read_text()  # no CPU rows


def test_a_failed_row_makes_it_fail_after_the_others_ran(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", failing="preset fast")
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env,
                          cwd=ROOT)  # fmt: skip
    assert done.returncode == 1, done.stdout
    assert "FAILED rows: fast (exit 1)" in done.stdout
    assert "python3 -m bench.gpu_rows compile" in done.stdout  # the rows after it still ran
    passed = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
                            env=_fake_tools(tmp_path / "bin2", failing=None), cwd=ROOT)  # fmt: skip
    assert passed.returncode == 0 and "every row passed" in passed.stdout


def test_a_failed_import_check_stops_at_once(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin", failing="imports")
    done = subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60, env=env, cwd=ROOT
    )
    assert done.returncode == 3 and "IMPORTS FAILED" in done.stdout and "preset reference" not in done.stdout


def test_the_header_lists_the_wheels_to_carry_within_the_carry_limit() -> None:
    header = SCRIPT.read_text().split("set -uo pipefail")[0]
    wheels = re.findall(r"#\s+(\S+\.whl)\s+([\d.]+) MiB", header)
    names = {name.split("-")[0]: name.split("-")[1] for name, _ in wheels}
    pins = dict(line.split("==") for line in (ROOT / "requirements/runtime.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))  # fmt: skip
    assert names == {"diffusers": pins["diffusers"], "transformers": pins["transformers"], "av": pins["av"]}
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    tree = sum(os.path.getsize(ROOT / f) for f in tracked.decode().split("\0") if f and (ROOT / f).is_file())
    assert sum(float(size) for _, size in wheels) + tree / 2**20 <= 64
