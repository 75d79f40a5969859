"""Writing and reading test videos with the package's own writer and decoder (the media tests)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.video_io import iter_frames


def read_all(path: Path, chunk_size: int = 8) -> np.ndarray:
    return np.concatenate(list(iter_frames(path, chunk_size)))


def write(path: Path, frames: np.ndarray, fps: Fraction | int = 24, **kwargs: object) -> Path:
    _, height, width, _ = frames.shape
    with VideoWriter(path, fps=fps, width=width, height=height, **kwargs) as writer:  # type: ignore[arg-type]
        writer.write(frames)
    return path
