"""Local conversion jobs on files: ``convert_file`` (decode -> StereoPipeline -> encode, with
timings) and ``depth_file`` (stage 1 alone, the raw depth stored), used by the CLI, ``long.local``
and the service's S3 jobs (``serving.jobs``), each under a job's context (``jobs.context.Job``:
its config, stop check and encoder), with ``stored_depth_shape``, which they share."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from stereocrafter.bounds import DEFAULT_MODE
from stereocrafter.config import StereoConfig
from stereocrafter.guard import call_checked
from stereocrafter.jobs.context import Job
from stereocrafter.media.depthstore import DepthShape, depth_summary, write_depth
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.stereotag import layout_of
from stereocrafter.media.streams import BackgroundSink
from stereocrafter.media.video_io import VideoInfo, iter_frames, probe
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import NO_HOOKS, RunHooks
from stereocrafter.stages.registry import processing_size
from stereocrafter.stereo.compose import output_size
from stereocrafter.stereo.depthmap import AlignedDepth

logger = logging.getLogger(__name__)

DECODE_CHUNK = 16


@dataclass(frozen=True)
class ConversionResult:
    output: Path
    mode: str
    num_frames: int
    fps: Fraction
    width: int  # of the stereo picture
    height: int
    stored_width: int  # of the encoded frames: the picture padded to even sizes (H.264 4:2:0)
    stored_height: int
    has_audio: bool
    timings: dict[
        str, float
    ]  # seconds: probe, depth, splat, inpainting, compose_encode, encode_finish, total
    source: VideoInfo
    encoder: dict[str, Any]  # ``Encoder.describe``: codec, preset, crf or cq, requested, fallback
    stereo_tag: str | None = None  # the container's stereo tag (``stereotag.describe``), None: none


def convert_file(
    pipeline: StereoPipeline,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = DEFAULT_MODE,
    job: Job | None = None,
    hooks: RunHooks = NO_HOOKS,
    grid_path: str | os.PathLike[str] | None = None,
    frames: tuple[int, int] | None = None,
    depth: AlignedDepth | None = None,
) -> ConversionResult:
    """Convert ``source`` into a stereo video at ``output`` (exact fps and frame count, audio kept).

    ``job``: the context (its config, stop check and encoding; default: the pipeline's config,
    never stopped, libx264 at quality 18). ``frames`` = (start, count) converts only those frames
    (a segment of a long file; no audio). ``hooks`` (progress, observer) and ``depth`` (a stored,
    aligned depth: no depth pass): see ``StereoPipeline.run``, which checks ``mode``;
    ``grid_path`` adds the debug grid's video (``hooks.grid_sink``). Raises ``VideoDecodeError``
    for an unusable input; nothing is left at ``output`` on failure.
    """
    job = job or Job(config=pipeline.config)
    hooks = replace(hooks, stop=job.stop)
    crf, encoder = job.encoding.quality, job.encoding.encoder
    started = time.perf_counter()
    info = segment_info(source, frames)
    timings = {"probe": time.perf_counter() - started}
    open_frames = frame_opener(source, frames, planes=pipeline.device.type == "cuda")
    audio_source = source if frames is None else None

    out_w, out_h = output_size(mode, info.width, info.height)
    with ExitStack() as stack:  # on an error: the sinks dropped, the writers aborted
        writer = stack.enter_context(
            VideoWriter(
                output,
                fps=info.fps,
                width=out_w,
                height=out_h,
                audio_source=audio_source,
                crf=crf,
                encoder=encoder,
                stereo=layout_of(mode),
            )
        )
        writers = [writer]
        grid = None
        if grid_path is not None:
            grid = stack.enter_context(
                VideoWriter(
                    grid_path,
                    fps=info.fps,
                    width=2 * info.width,
                    height=2 * info.height,
                    crf=crf,
                    encoder=encoder,
                )
            )
            writers.append(grid)
        # the encoder works on chunk k in a thread while the GPU works on chunk k + 1; the sinks are
        # left (queues drained, or dropped after an error) before the writers close.
        # On a GPU with NVENC the RGB -> YUV conversion runs on the device as well (``media.yuv``):
        # the pipeline hands the writer its planes; libx264 keeps swscale, on the host.
        on_device = writer.encoder.codec != "libx264" and writer.takes_yuv and pipeline.device.type == "cuda"
        background = BackgroundSink(writer.write_yuv if on_device else writer.write)
        background.takes_yuv420p = on_device
        sink = stack.enter_context(background)
        grid_sink = stack.enter_context(BackgroundSink(grid.write)) if grid is not None else None
        if grid_sink is not None:
            hooks = replace(hooks, grid_sink=grid_sink)
        result = pipeline.run(
            open_frames,
            sink,
            num_frames=info.num_frames,
            width=info.width,
            height=info.height,
            mode=mode,
            config=job.config,
            hooks=hooks,
            depth=depth,
        )
        finishing = stack.pop_all()  # success: the sinks drain and the writers finish below
    encode_started = time.perf_counter()

    # The last chunks' encoding and libx264's final flush (its look-ahead: seconds for a wide
    # 1080p picture on a few cores) run under the stop check too; a stopped job leaves no file.
    def cancel() -> None:
        for each in writers:
            each.cancel()

    call_checked(finishing.close, job.stop, name="encode-finish", abandon=cancel, check_first=False)
    stored_width, stored_height = writer.encoded_width, writer.encoded_height
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
        stored_width=stored_width,
        stored_height=stored_height,
        has_audio=info.has_audio,
        timings=timings,
        source=info,
        encoder=job.encoding.describe(),
        stereo_tag=writer.stereo_tag,
    )


def segment_info(source: str | os.PathLike[str], frames: tuple[int, int] | None) -> VideoInfo:
    """``probe(source)``, narrowed to frames (start, count) when given (no audio then)."""
    info = probe(source)
    if frames is None:
        return info
    start, count = frames
    if start < 0 or count < 1 or start + count > info.num_frames:
        raise ValueError(f"frames {start}+{count} are outside the {info.num_frames}-frame video")
    return replace(info, num_frames=count, duration=float(count / info.fps), has_audio=False)


def frame_opener(
    source: str | os.PathLike[str], frames: tuple[int, int] | None, *, planes: bool = False
) -> Callable[[], Iterator[Any]]:
    """``planes``: hand 4:2:0 streams over as decoded, for the GPU to convert (``media.yuv``)."""
    start, count = frames if frames is not None else (0, None)

    def open_frames() -> Iterator[Any]:
        return iter_frames(source, DECODE_CHUNK, start=start, count=count, planes=planes)

    return open_frames


@dataclass(frozen=True)
class DepthFileResult:
    summary: dict[str, Any]  # ``depthstore.depth_summary``: stats and thumbnails
    info: VideoInfo  # of the segment
    depth_width: int
    depth_height: int
    depth_bytes: int
    timings: dict[str, float]


def depth_file(
    pipeline: StereoPipeline,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    job: Job | None = None,
    hooks: RunHooks = NO_HOOKS,
    frames: tuple[int, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> DepthFileResult:
    """Stage 1 alone: the segment's raw depth stored at ``output`` (``depthstore`` format, tagged
    with the config's depth model) and the summary the alignment of segments works from, under
    ``job`` (see ``convert_file``). Nothing is left at ``output`` on failure."""
    job = job or Job(config=pipeline.config)
    hooks = replace(hooks, stop=job.stop)
    started = time.perf_counter()
    info = segment_info(source, frames)
    timings = {"probe": time.perf_counter() - started}
    opener = frame_opener(source, frames)
    ends: dict[str, np.ndarray] = {}

    def open_frames() -> Iterator[np.ndarray]:  # the first and last frames' colours, on the way
        for chunk in opener():
            ends.setdefault("first", chunk[0].copy())
            ends["last"] = chunk[-1]
            yield chunk

    depth_started = time.perf_counter()
    raw = pipeline.depth_pass(
        open_frames,
        num_frames=info.num_frames,
        width=info.width,
        height=info.height,
        config=job.config,
        hooks=hooks,
    )
    timings["depth"] = time.perf_counter() - depth_started
    store_started = time.perf_counter()
    try:
        write_depth(
            output, raw, fps=info.fps, source_width=info.width, source_height=info.height,
            model=job.config.depth_model, extra=extra, stop=job.stop,
        )  # fmt: skip
    except BaseException:
        Path(output).unlink(missing_ok=True)
        raise
    summary = depth_summary(raw, ends["first"], ends["last"])
    timings["depth_store"] = time.perf_counter() - store_started
    timings["total"] = time.perf_counter() - started
    return DepthFileResult(
        summary=summary,
        info=info,
        depth_width=int(raw.shape[-1]),
        depth_height=int(raw.shape[-2]),
        depth_bytes=Path(output).stat().st_size,
        timings=timings,
    )


def stored_depth_shape(info: VideoInfo, config: StereoConfig) -> DepthShape:
    """What a segment of ``info`` needs of a stored depth: its frames and size, and the depth
    stage's processing size for it under ``config`` (what its depth task stored)."""
    height, width = processing_size(info.height, info.width, config)
    return DepthShape(info.num_frames, info.width, info.height, width, height, config.depth_model)
