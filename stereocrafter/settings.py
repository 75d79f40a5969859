"""Every environment variable the package reads, read once into a frozen ``Settings``.

This is the only module that reads ``os.environ``; everything else gets its configuration from a
``Settings`` (or plain arguments) passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_WEIGHTS_DIR = "/opt/ml/model/weights"


@dataclass(frozen=True)
class Settings:
    weights_dir: Path
    device: str  # "cuda" when a GPU is present, else "cpu"; STEREOCRAFTER_DEVICE overrides


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read the environment once. ``WEIGHTS_DIR`` (default /opt/ml/model/weights);
    ``STEREOCRAFTER_DEVICE`` (cpu | cuda, default: cuda if available)."""
    env = os.environ if environ is None else environ
    device = env.get("STEREOCRAFTER_DEVICE", "").strip().lower()
    if not device:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ValueError(f"STEREOCRAFTER_DEVICE must be cpu or cuda, got {device!r}")
    return Settings(weights_dir=Path(env.get("WEIGHTS_DIR") or DEFAULT_WEIGHTS_DIR), device=device)
