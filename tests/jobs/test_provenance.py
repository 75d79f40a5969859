"""``jobs.provenance``: the code and the weights a record names."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from stereocrafter.jobs import provenance
from stereocrafter.jobs.provenance import code_identity, code_version, sources_digest, weights_of

ROOT = Path(__file__).resolve().parents[2]


def test_the_sources_digest_follows_every_byte_of_the_package_and_nothing_else(tmp_path: Path) -> None:
    copy = tmp_path / "stereocrafter"
    shutil.copytree(provenance.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "_build.py"))
    assert sources_digest(copy) == sources_digest(provenance.PACKAGE)
    (copy / "notes.txt").write_text("not code")  # no Python file changed
    (copy / "__pycache__").mkdir(exist_ok=True)
    (copy / "__pycache__" / "x.py").write_text("cache")
    assert sources_digest(copy) == sources_digest(provenance.PACKAGE)
    stage = copy / "stereo" / "splatting.py"
    stage.write_text(stage.read_text().replace("Z_BUFFER_BASE = 1.414", "Z_BUFFER_BASE = 1.415"))
    assert sources_digest(copy) != sources_digest(provenance.PACKAGE)


def test_an_image_names_the_commit_its_build_wrote(tmp_path: Path) -> None:
    """The build's own command (containerize/buildspec.yml) writes the file the version is read from."""
    commands = yaml.safe_load((ROOT / "containerize" / "buildspec.yml").read_text())["phases"]["build"][
        "commands"
    ]
    write = next(line for line in commands if "_build.py" in line)
    package = tmp_path / "stereocrafter"
    package.mkdir()
    commit = "0123456789abcdef0123456789abcdef01234567"
    env = {"PATH": os.environ["PATH"], "CODEBUILD_RESOLVED_SOURCE_VERSION": commit}
    subprocess.run(["bash", "-c", write], cwd=tmp_path, env=env, check=True)
    assert code_version(package) == f"git {commit}"
    (package / "_build.py").unlink()  # an installed copy with no build file and no checkout
    from stereocrafter import __version__

    assert code_version(package) == f"stereocrafter {__version__}"


def test_a_checkout_names_itself_with_git_describe() -> None:
    identity = code_identity()
    assert set(identity) == {"version", "sources", "libraries"}
    assert re.fullmatch(r"[0-9a-f]{64}", identity["sources"])
    assert identity["libraries"]["torch"].startswith("2.") and identity["libraries"]["av"]
    if (ROOT / ".git").exists() and shutil.which("git"):
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=12"], cwd=ROOT,
                                   capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        assert identity["version"] == f"git {described}"


def test_the_weights_of_a_task_are_its_models_and_what_they_run_on() -> None:
    loaded = {"depthcrafter": {"d": "1" * 64}, "svd": {"v": "2" * 64}, "vda-small": {"s": "3" * 64},
              "stereocrafter": {"i": "4" * 64}, "migan": {"m": "5" * 64}}  # fmt: skip
    assert weights_of(loaded, ["vda-small"]) == {"vda-small": {"s": "3" * 64}}
    assert weights_of(loaded, ["depthcrafter"]) == {"depthcrafter": {"d": "1" * 64}, "svd": {"v": "2" * 64}}
    assert set(weights_of(loaded, ["vda-small", "migan"])) == {"vda-small", "migan"}
    assert set(weights_of(loaded, ["vda-small", "stereocrafter"])) == {"vda-small", "stereocrafter", "svd"}
    assert weights_of(loaded, ["vda-small", "background-fill"]) == {"vda-small": {"s": "3" * 64}}
