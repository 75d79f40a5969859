"""Conversion jobs: ``convert_file`` (local files: decode -> StereoPipeline -> encode, with timings,
used by the CLI) and ``run_job`` (the service's S3 job around it)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereocrafter.compose import check_mode, output_size
from stereocrafter.depth import processing_size
from stereocrafter.depthstore import DepthShape, depth_summary, read_depth, write_depth
from stereocrafter.echo import bounded
from stereocrafter.errors import (
    DeadlineExceededError,
    LimitExceededError,
    ServiceStoppingError,
    StereoCrafterError,
)
from stereocrafter.guard import Check, Deadline, call_checked
from stereocrafter.loading import is_tiny
from stereocrafter.pipeline import Observer, Progress, StereoConfig, StereoPipeline
from stereocrafter.report import QualityReport
from stereocrafter.schemas import DepthResponse, InvocationRequest, InvocationResponse, Padding, S3Location
from stereocrafter.settings import Settings
from stereocrafter.storage import S3Storage
from stereocrafter.streams import BackgroundSink
from stereocrafter.video_io import VideoInfo, VideoWriter, check_packets, iter_frames, probe

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


def convert_file(
    pipeline: StereoPipeline,
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    mode: str = "anaglyph",
    progress: Progress | None = None,
    grid_path: str | os.PathLike[str] | None = None,
    crf: int = 18,
    observer: Observer | None = None,
    frames: tuple[int, int] | None = None,
    depth: torch.Tensor | None = None,
    depth_map: tuple[float, float] | None = None,
    depth_range: tuple[float, float] | None = None,
    check: Callable[[], None] | None = None,
) -> ConversionResult:
    """Convert ``source`` into a stereo video at ``output`` (exact fps and frame count, audio kept).

    ``frames`` = (start, count) converts only those frames (a segment of a long file; no audio).
    ``depth``, ``depth_map`` and ``depth_range``: see ``StereoPipeline.run`` (a stored, aligned
    depth: no depth pass). Raises ``VideoDecodeError`` for an unusable input; nothing is left at
    ``output`` on failure.
    """
    mode = check_mode(mode)
    started = time.perf_counter()
    info = segment_info(source, frames)
    timings = {"probe": time.perf_counter() - started}
    open_frames = frame_opener(source, frames)
    audio_source = source if frames is None else None

    out_w, out_h = output_size(mode, info.width, info.height)
    with ExitStack() as stack:  # on an error: the sinks dropped, the writers aborted
        writer = stack.enter_context(
            VideoWriter(output, fps=info.fps, width=out_w, height=out_h, audio_source=audio_source, crf=crf)
        )
        writers = [writer]
        grid = None
        if grid_path is not None:
            grid = stack.enter_context(
                VideoWriter(grid_path, fps=info.fps, width=2 * info.width, height=2 * info.height, crf=crf)
            )
            writers.append(grid)
        # libx264 encodes chunk k in a thread while the GPU works on chunk k + 1; the sinks are
        # left (queues drained, or dropped after an error) before the writers close.
        sink = stack.enter_context(BackgroundSink(writer.write))
        grid_sink = stack.enter_context(BackgroundSink(grid.write)) if grid is not None else None
        result = pipeline.run(
            open_frames,
            sink,
            num_frames=info.num_frames,
            width=info.width,
            height=info.height,
            mode=mode,
            progress=progress,
            grid_sink=grid_sink,
            observer=observer,
            depth=depth,
            depth_map=depth_map,
            depth_range=depth_range,
            check=check,
        )
        finishing = stack.pop_all()  # success: the sinks drain and the writers finish below
    encode_started = time.perf_counter()

    # The last chunks' encoding and libx264's final flush (its look-ahead: seconds for a wide
    # 1080p picture on a few cores) run under ``check`` too; a stopped job leaves no file.
    def cancel() -> None:
        for each in writers:
            each.cancel()

    call_checked(finishing.close, check, name="encode-finish", abandon=cancel, check_first=False)
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
    source: str | os.PathLike[str], frames: tuple[int, int] | None
) -> Callable[[], Iterator[np.ndarray]]:
    start, count = frames if frames is not None else (0, None)

    def open_frames() -> Iterator[np.ndarray]:
        return iter_frames(source, DECODE_CHUNK, start=start, count=count)

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
    frames: tuple[int, int] | None = None,
    progress: Progress | None = None,
    extra: dict[str, Any] | None = None,
    check: Callable[[], None] | None = None,
) -> DepthFileResult:
    """Stage 1 alone: the segment's raw depth stored at ``output`` (``depthstore`` format) and the
    summary the alignment of segments works from. Nothing is left at ``output`` on failure."""
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
        progress=progress,
        check=check,
    )
    timings["depth"] = time.perf_counter() - depth_started
    store_started = time.perf_counter()
    try:
        write_depth(
            output, raw, fps=info.fps, source_width=info.width, source_height=info.height, extra=extra,
            check=check,
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


def job_config(preset: str, settings: Settings, **overrides: Any) -> StereoConfig:
    """The preset's ``StereoConfig`` with the request's values, and the step counts of
    ``STEREOCRAFTER_DEPTH_STEPS``/``_INPAINT_STEPS`` when those are set."""
    steps = {"depth_steps": settings.depth_steps, "inpaint_steps": settings.inpaint_steps}
    return StereoConfig.from_preset(preset, **{k: v for k, v in steps.items() if v is not None}, **overrides)


def run_job(
    pipeline: StereoPipeline,
    storage: S3Storage,
    request: InvocationRequest,
    settings: Settings,
    request_id: str,
    deadline: Deadline | None = None,
) -> InvocationResponse | DepthResponse:
    """One /invocations job: checks -> S3 download -> limits -> conversion -> S3 upload.

    Before any download, ``storage.preflight`` checks that the input exists, that the output is
    not the input under another name, that the output bucket takes writes, and (``overwrite``
    false) that nothing is at the output yet; a ``depth_uri`` must exist too. Per-request files
    live in a temporary directory that is always removed. The output object is uploaded only once
    the local file is complete, so a failed job leaves nothing at the output key. Raises the
    service's errors (400 / 403 / 404 / 409 / 413 / 422 / 502, ...).

    ``task: "depth"`` runs stage 1 only and stores the raw depth (``run_depth_job``). ``deadline``
    (``guard.Deadline``) is checked before the download, before the conversion and inside it.
    """
    check = deadline.check if deadline is not None else _no_check
    if request.task == "depth":
        return run_depth_job(pipeline, storage, request, settings, request_id, deadline)
    check()
    started = time.time()
    preset = request.preset or settings.preset
    config = job_config(
        preset, settings, max_disp=request.max_disp, seed=request.seed, tile_num=request.tile_num
    )
    job_pipeline = StereoPipeline(pipeline.depth, pipeline.inpainting, config)
    source_uri, output_uri = request.s3_input_uri, request.output
    checked = time.perf_counter()
    head = storage.preflight(
        source_uri,
        output_uri,
        overwrite=request.overwrite,
        also=report_guarded(output_uri, request),
        check=check,
    )
    check_input_size(head.size, settings)
    depth_bytes = max_depth_bytes(settings)
    if request.depth_uri is not None:
        stored_size = storage.head(request.depth_uri, check=check).size  # 404 / 403 before any work
        if stored_size > depth_bytes:
            raise LimitExceededError(f"the stored depth is {stored_size} bytes; the limit is {depth_bytes}")
    timings = {"preflight": time.perf_counter() - checked}
    with tempfile.TemporaryDirectory(prefix=f"job-{request_id}-", dir=settings.work_dir) as tmp:
        source = Path(tmp) / "input"
        output = Path(tmp) / "output.mp4"
        info = fetch_segment(storage, source_uri, source, settings, timings, check)
        depth = None
        if request.depth_uri is not None:
            loaded = time.perf_counter()
            storage.download(request.depth_uri, Path(tmp) / "depth.mkv", max_bytes=depth_bytes, check=check)
            stored = read_depth(Path(tmp) / "depth.mkv", stored_depth_shape(info, config), check)
            depth = stored.depth
            timings["depth_load"] = time.perf_counter() - loaded
        report = QualityReport() if request.report else None
        result = convert_file(
            job_pipeline, source, output, mode=request.mode, observer=report, depth=depth,
            depth_map=request.depth_map, depth_range=request.depth_range, check=check,
        )  # fmt: skip
        upload_started = time.perf_counter()
        storage.upload(output, output_uri, overwrite=request.overwrite, check=check)
        timings.update(result.timings)
        timings["upload"] = time.perf_counter() - upload_started
        reported: dict[str, Any] = {}
        if report is not None:  # after the video, and never failing the job
            tiny = is_tiny(settings.weights_dir)
            reported = publish_report(
                report, storage, output_uri, Path(tmp), preset, timings, tiny, request_id,
                overwrite=request.overwrite, check=check,
            )  # fmt: skip
    return InvocationResponse(
        s3_output_uri=output_uri.uri,
        mode=request.mode,
        preset=preset,
        frames=result.num_frames,
        fps=str(result.fps),
        width=result.stored_width,
        height=result.stored_height,
        padded=padding_of(result),
        source_width=info.width,
        source_height=info.height,
        has_audio=result.has_audio,
        timings={k: round(v, 3) for k, v in timings.items()},
        request_id=request_id,
        started_at=started,
        finished_at=time.time(),
        tiny_weights=False,
        **reported,
    )


def run_depth_job(
    pipeline: StereoPipeline,
    storage: S3Storage,
    request: InvocationRequest,
    settings: Settings,
    request_id: str,
    deadline: Deadline | None = None,
) -> DepthResponse:
    """``task: "depth"``: the same checks and limits as a conversion, then stage 1 alone; the raw
    depth goes to ``depth_output_uri`` (``depthstore`` format) and its summary into the answer."""
    check = deadline.check if deadline is not None else _no_check
    check()
    started = time.time()
    preset = request.preset or settings.preset
    config = job_config(preset, settings, seed=request.seed)
    job_pipeline = StereoPipeline(pipeline.depth, pipeline.inpainting, config)
    source_uri, output_uri = request.s3_input_uri, request.output
    checked = time.perf_counter()
    head = storage.preflight(source_uri, output_uri, overwrite=request.overwrite, check=check)
    check_input_size(head.size, settings)
    timings = {"preflight": time.perf_counter() - checked}
    with tempfile.TemporaryDirectory(prefix=f"job-{request_id}-", dir=settings.work_dir) as tmp:
        source, output = Path(tmp) / "input", Path(tmp) / "depth.mkv"
        fetch_segment(storage, source_uri, source, settings, timings, check)
        extra = {"preset": preset, "seed": request.seed, "input": source_uri.uri}
        result = depth_file(job_pipeline, source, output, extra=extra, check=check)
        upload_started = time.perf_counter()
        storage.upload(
            output, output_uri, content_type="video/x-matroska", overwrite=request.overwrite, check=check
        )
        timings.update(result.timings)
        timings["upload"] = time.perf_counter() - upload_started
    return DepthResponse(
        depth_output_uri=output_uri.uri,
        preset=preset,
        frames=result.info.num_frames,
        fps=str(result.info.fps),
        source_width=result.info.width,
        source_height=result.info.height,
        depth_width=result.depth_width,
        depth_height=result.depth_height,
        depth_bytes=result.depth_bytes,
        stats=result.summary["stats"],
        thumbnails=result.summary["thumbnails"],
        timings={k: round(v, 3) for k, v in timings.items()},
        request_id=request_id,
        started_at=started,
        finished_at=time.time(),
        tiny_weights=False,
    )


def _no_check() -> None:
    pass


def stored_depth_shape(info: VideoInfo, config: StereoConfig) -> DepthShape:
    """What a segment of ``info`` needs of a stored depth: its frames and size, and the depth
    stage's processing size for it under ``config`` (what its depth task stored)."""
    height, width = processing_size(info.height, info.width, config.depth_max_res)
    return DepthShape(info.num_frames, info.width, info.height, width, height)


def check_input_size(size: int, settings: Settings) -> None:
    if size > settings.max_input_bytes:
        raise LimitExceededError(f"the input is {size} bytes; the limit is {settings.max_input_bytes} bytes")


def max_depth_bytes(settings: Settings) -> int:
    """A stored depth is refused above what FFV1 could take for ``max_frames`` frames at the depth
    stage's largest size (1024 x 1024, 16 bits; FFV1 never stores much above its raw size)."""
    return settings.max_frames * (2 * 1024 * 1024 + 65536)


def fetch_segment(
    storage: S3Storage,
    uri: S3Location,
    path: Path,
    settings: Settings,
    timings: dict[str, float],
    check: Check | None = None,
) -> VideoInfo:
    """Download the segment and check it against the limits before any model work; ``check``
    (the job's deadline) runs throughout."""
    download_started = time.perf_counter()
    storage.download(uri, path, max_bytes=settings.max_input_bytes, check=check)
    timings["download"] = time.perf_counter() - download_started
    info = probe(path, check)
    check_packets(path, info, check)  # a truncated segment is a 422 now, not minutes into the job
    if info.num_frames > settings.max_frames:
        raise LimitExceededError(
            f"the segment has {info.num_frames} frames; the limit is {settings.max_frames}"
        )
    if info.width * info.height > settings.max_pixels:
        size, limit = f"{info.width}x{info.height}", settings.max_pixels
        raise LimitExceededError(f"the segment is {size}; the limit is {limit} pixels per frame")
    return info


def padding_of(result: ConversionResult) -> Padding | None:
    """What the stored frame adds to the stereo picture, and why (None when nothing)."""
    right, bottom = result.stored_width - result.width, result.stored_height - result.height
    if not (right or bottom):
        return None
    return Padding(
        right=right,
        bottom=bottom,
        reason=f"the {result.width}x{result.height} picture is stored as "
        f"{result.stored_width}x{result.stored_height}: H.264 with 4:2:0 chroma needs even sizes, "
        "so the last column and/or row is repeated",
    )


def report_extra(preset: str, timings: dict[str, float]) -> dict[str, Any]:
    """What a report says about its run besides the figures: preset, versions, timings."""
    import diffusers
    import torch

    from stereocrafter import __version__

    return {
        "preset": preset,
        "versions": {
            "stereocrafter": __version__,
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
        },
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }


def write_report(report: QualityReport, json_path: Path, png_path: Path, extra: dict[str, Any]) -> None:
    """The report's two files: JSON (``QualityReport.as_dict``) and the PNG contact sheet."""
    from stereocrafter.report_image import write_png

    if report.error is not None:
        raise RuntimeError(f"the report could not be computed: {report.error}")
    json_path.write_text(json.dumps(report.as_dict(**extra), indent=1))
    title = f"{extra.get('preset', '')} preset" + (
        ", TINY RANDOM WEIGHTS" if extra.get("tiny_weights") else ""
    )
    write_png(report, png_path, title=title)


def report_locations(output: S3Location) -> dict[str, S3Location]:
    """Where a job's report goes: ``<output>.report.json`` and ``<output>.report.png``
    (``ValueError`` when those keys are not valid, e.g. over S3's 1024 bytes)."""
    return {kind: S3Location.parse(f"{output.uri}.report.{kind}") for kind in ("json", "png")}


def report_guarded(output: S3Location, request: InvocationRequest) -> tuple[S3Location, ...]:
    """The report's objects, which ``preflight`` checks with the video's (none when the request
    asks for no report, or when their keys are invalid: the report then fails alone, later)."""
    try:
        return tuple(report_locations(output).values()) if request.report else ()
    except ValueError:
        return ()


def publish_report(
    report: QualityReport,
    storage: S3Storage,
    output: S3Location,
    tmp: Path,
    preset: str,
    timings: dict[str, float],
    tiny: bool,
    request_id: str,
    *,
    overwrite: bool = True,
    check: Check | None = None,
) -> dict[str, Any]:
    """Write the report beside the uploaded video (``report_locations``); the response's report
    fields. Any failure is logged and named in ``report_error``: the job and its video stand.
    The job's ``check`` and ``overwrite`` apply to the report's objects as to the video; a
    deadline or SIGTERM that comes after the video was uploaded ends the report, not the job."""
    summary: dict[str, Any] | None = None
    try:
        summary = report.clip() if report.error is None else None
        targets = report_locations(output)
        if check is not None:
            check()
        extra = {**report_extra(preset, timings), "tiny_weights": tiny}
        files = {kind: tmp / f"report.{kind}" for kind in targets}
        write_report(report, files["json"], files["png"], extra)
        for kind, target in targets.items():
            content = "application/json" if kind == "json" else "image/png"
            storage.upload(files[kind], target, content_type=content, overwrite=overwrite, check=check)
    except Exception as err:
        logger.warning("request %s: no report: %s: %s", request_id, type(err).__name__, err)
        if isinstance(err, DeadlineExceededError | ServiceStoppingError):
            why = (
                "the deadline passed" if isinstance(err, DeadlineExceededError) else "the service is stopping"
            )
            message = f"the report was not written: {why} after the video was uploaded"
        elif isinstance(err, StereoCrafterError):
            message = err.message
        else:
            message = f"{type(err).__name__}: {err}"
        return {"report": summary, "report_error": bounded(message)}
    return {"report": summary, "report_uris": {kind: t.uri for kind, t in targets.items()}}
