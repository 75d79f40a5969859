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


def _modules() -> list[Path]:
    return [
        p
        for p in sorted((ROOT / "stereocrafter").rglob("*.py"))
        if p.name not in ("__init__.py", "__main__.py")
    ]


def test_the_top_level_stays_small_and_no_file_outside_models_grows_past_400_lines() -> None:
    """At most 14 modules at the package's top level (``__init__`` included): the rest live in
    families. No file of the package outside ``models/`` (where a pipeline is one readable file, as
    in diffusers), of ``containerize/`` or ``service.py`` passes 400 lines."""
    top = sorted(p.name for p in (ROOT / "stereocrafter").glob("*.py"))
    assert len(top) <= 14, top
    files = [
        *(ROOT / "stereocrafter").rglob("*.py"),
        *(ROOT / "containerize").glob("*.py"),
        ROOT / "service.py",
    ]
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in files}
    long = {name: n for name, n in sizes.items() if n > 400 and not name.startswith("stereocrafter/models/")}
    assert long == {}


def test_benches_and_the_image_smoke_are_users_of_the_package() -> None:
    """They import the package as any caller does (``python -m bench.X``): no ``sys.path`` edits and
    nothing from ``tests``."""
    scripts = [
        *(ROOT / "bench").glob("*.py"),
        *(ROOT / "containerize").glob("*.py"),
        ROOT / "docs" / "report_example.py",
    ]
    found = [(p.name, line.strip()) for p in scripts for line in p.read_text().splitlines()
             if "sys.path" in line or line.lstrip().startswith(("from tests", "import tests"))]  # fmt: skip
    assert found == []


def test_the_tests_mirror_the_package() -> None:
    """A folder per family and a file per module: ``stereocrafter/<family>/<m>.py`` is imported by
    ``tests/<family>/test_<m>.py`` (a top-level module by ``tests/test_<m>.py``)."""
    import re

    missing = []
    for path in _modules():
        relative = path.relative_to(ROOT / "stereocrafter")
        module = "stereocrafter." + ".".join(relative.with_suffix("").parts)
        test = ROOT / "tests" / relative.parent / f"test_{path.stem}.py"
        parent = module.rsplit(".", 1)[0]
        text = test.read_text() if test.is_file() else ""
        imported = re.search(rf"\b{re.escape(module)}\b", text) or re.search(
            rf"from {re.escape(parent)} import [^\n]*\b{path.stem}\b", text
        )
        if not imported:
            missing.append((module, str(test.relative_to(ROOT))))
    assert missing == []
