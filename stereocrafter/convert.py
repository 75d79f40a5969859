"""One conversion job on local files: decode -> StereoPipeline -> encode, with timings.

The service adds the S3 download/upload around ``convert_file``; the CLI calls it directly.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stereocrafter.compose import check_mode
from stereocrafter.pipeline import Progress, StereoPipeline
from stereocrafter.video_io import VideoInfo, VideoWriter, iter_frames, probe

logger = logging.getLogger(__name__)

DECODE_CHUNK = 16


@dataclass(frozen=True)
class ConversionResult:
    output: Path
    mode: str
    num_frames: int
    fps: Fraction
    width: int  # of the stereo output
    height: int
    has_audio: bool
    timings: dict[
        str, float
    ]  # seconds: probe, depth, splat, inpainting, compose_encode, encode_finish, total
    source: VideoInfo


def convert_file(
    pipeline: StereoPipeline,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = "anaglyph",
    progress: Progress | None = None,
    grid_path: str | os.PathLike[str] | None = None,
    crf: int = 18,
) -> ConversionResult:
    """Convert ``source`` into a stereo video at ``output`` (exact fps and frame count, audio kept).

    Raises ``VideoDecodeError`` for an unusable input; nothing is left at ``output`` on failure.
    """
    mode = check_mode(mode)
    started = time.perf_counter()
    info = probe(source)
    timings = {"probe": time.perf_counter() - started}

    def open_frames() -> Iterator[np.ndarray]:
        return iter_frames(source, DECODE_CHUNK)

    from stereocrafter.compose import output_size

    out_w, out_h = output_size(mode, info.width, info.height)
    with ExitStack() as stack:
        writer = stack.enter_context(
            VideoWriter(output, fps=info.fps, width=out_w, height=out_h, audio_source=source, crf=crf)
        )
        grid = None
        if grid_path is not None:
            grid = stack.enter_context(
                VideoWriter(grid_path, fps=info.fps, width=2 * info.width, height=2 * info.height, crf=crf)
            )
        result = pipeline.run(
            open_frames,
            writer.write,
            num_frames=info.num_frames,
            width=info.width,
            height=info.height,
            mode=mode,
            progress=progress,
            grid_sink=grid.write if grid is not None else None,
        )
        encode_started = time.perf_counter()
    timings.update(result.timings)
    timings["encode_finish"] = time.perf_counter() - encode_started
    timings["total"] = time.perf_counter() - started
    return ConversionResult(
        output=Path(output),
        mode=mode,
        num_frames=result.num_frames,
        fps=info.fps,
        width=out_w,
        height=out_h,
        has_audio=info.has_audio,
        timings=timings,
        source=info,
    )
