"""The package's layout rules (``.importlinter``) hold, cover every module, and catch a violation."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / ".importlinter")
    return parser


def test_every_module_has_a_place_in_the_layers() -> None:
    """A module missing from the layers would escape the "never import upward" rule: each top-level
    module and subpackage of ``stereocrafter`` is named in exactly one layer."""
    layers = contracts()["importlinter:contract:layers"]["layers"]
    named: list[str] = []
    for layer in layers.strip().splitlines():
        named += [part.strip().removeprefix("stereocrafter.") for part in layer.replace(":", "|").split("|")]
    package = ROOT / "stereocrafter"
    modules = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {p.parent.name for p in package.glob("*/__init__.py")}
    assert sorted(named) == sorted(set(named)), "a module is named twice"
    assert set(named) == modules, (modules - set(named), set(named) - modules)


def run_lint(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--no-cache", str(root / ".importlinter")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_contracts_hold_and_a_violation_fails(tmp_path: Path) -> None:
    """``lint-imports`` passes on the package as it is; with ``import av`` added to the pipeline (PyAV
    outside media/), ``import torch`` to the client or the run config, a stage module imported by
    the loader, the same check fails naming the import."""
    kept = run_lint(ROOT)
    assert kept.returncode == 0 and "0 broken" in kept.stdout, kept.stdout[-3000:]
    for module, line, contract in [
        ("pipeline/run.py", "import av", "PyAV only in media/"),
        ("client.py", "import torch", "The client and the segment orchestration"),
        ("settings.py", "import numpy", "The foundation and the run config import no torch"),
        ("config.py", "import torch", "The foundation and the run config import no torch"),
        ("stereo/compose.py", "from stereocrafter.pipeline import run", "Layers"),
        ("pipeline/loading.py", "from stereocrafter.stages import vda", "The pipeline names no model"),
        ("long/tasks.py", "from stereocrafter.jobs import context", "The client and the segment"),
    ]:
        copy = tmp_path / module.replace("/", "_")
        shutil.copytree(
            ROOT / "stereocrafter", copy / "stereocrafter", ignore=shutil.ignore_patterns("__pycache__")
        )
        shutil.copy(ROOT / ".importlinter", copy / ".importlinter")
        target = copy / "stereocrafter" / module
        target.write_text(target.read_text() + f"\n{line}  # planted by the test\n")
        broken = run_lint(copy)
        report = broken.stdout
        assert broken.returncode != 0 and " 0 broken" not in report, (module, report[-3000:])
        assert contract in report and f"stereocrafter.{module[:-3].replace('/', '.')}" in report, report[
            -3000:
        ]
