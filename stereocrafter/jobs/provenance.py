"""What made an output: the code (``code_identity``) and the weights (``weights_of``), named in
every record (``jobs.records``) so that a record made by other code or other weights is not reused.

The code is named three ways, each for its reader:

- ``version``: a name a person can look up. The image's git commit, written at build time into
  ``stereocrafter/_build.py`` as ``COMMIT = "<sha>"`` (``containerize/buildspec.yml``,
  ``containerize/build_image.sh``); in a git checkout, ``git describe --always --dirty``;
  otherwise the package's version (an installed wheel).
- ``sources``: the SHA-256 of the package's own Python files (their paths and bytes): it changes
  whenever the code that makes the output can, and not otherwise; a dirty checkout's edits show here
  where ``git describe`` only says ``-dirty``.
- ``libraries``: the versions of the libraries whose arithmetic the frames go through (torch,
  diffusers, transformers, PyAV with its FFmpeg and x264, numpy): the same code on another torch
  is another film.

Each is computed once per process. A record's recipe holds ``sources`` and ``libraries``, which
decide whether it is reused; ``version`` is written beside the recipe, for people: a commit that
changes no Python file of the package (the docs, a rebuilt image) keeps every record.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stereocrafter.catalog import SHARED

PACKAGE = Path(__file__).resolve().parents[1]  # the stereocrafter package
BUILD_FILE = PACKAGE / "_build.py"  # written at image build time; not in git
LIBRARIES = ("torch", "diffusers", "transformers", "av", "numpy")


def _built_commit(path: Path = BUILD_FILE) -> str | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("COMMIT = "):
            return line.split("=", 1)[1].strip().strip('"') or None
    return None


def _described(folder: Path) -> str | None:
    """``git describe --always --dirty`` of the checkout ``folder`` is in, or None (no git, not a
    checkout)."""
    try:
        run = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=folder, capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    described = run.stdout.strip()
    return described if run.returncode == 0 and described else None


def sources_digest(package: Path = PACKAGE) -> str:
    """SHA-256 of the package's Python files: each one's path (relative) and bytes, in path order.
    The build file is left out: the commit it names is ``version``'s business."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        if path == package / BUILD_FILE.name or "__pycache__" in path.parts:
            continue
        relative = path.relative_to(package).as_posix().encode()
        digest.update(len(relative).to_bytes(4, "big") + relative)
        data = path.read_bytes()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def _library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in LIBRARIES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def code_version(package: Path = PACKAGE) -> str:
    """The image's commit, else ``git describe`` of the checkout, else the package's version."""
    from stereocrafter import __version__

    built = _built_commit(package / BUILD_FILE.name)
    if built is not None:
        return f"git {built}"
    described = _described(package) if (package.parent / ".git").exists() else None
    return f"git {described}" if described else f"stereocrafter {__version__}"


@functools.cache
def code_identity() -> dict[str, Any]:
    """The code that makes an output, as a record names it (see the module docstring)."""
    return {"version": code_version(), "sources": sources_digest(), "libraries": _library_versions()}


def weights_of(loaded: Mapping[str, Mapping[str, str]], models: Iterable[str]) -> dict[str, dict[str, str]]:
    """Of ``loaded`` (model -> {weight file -> SHA-256}, ``StereoPipeline.weights``), the files of
    ``models`` and of what they run on (SVD's VAE and image encoder under both diffusion models)."""
    wanted = set(models)
    wanted |= {shared for model in list(wanted) for shared in SHARED.get(model, ())}
    return {model: dict(files) for model, files in sorted(loaded.items()) if model in wanted}
