"""The service's S3 jobs: ``run_job`` (the stereo task) and ``run_depth_job`` (``task: "depth"``),
around the local jobs of ``convert`` (``convert_file``, ``depth_file``).

Both run under the job's context (``jobs.context.Job``: the run config the request schema resolved,
the storage, the stop check, the encoder) and start with the same prelude (``_begin``): the stop
check's first run and ``storage.preflight`` before any download (the input exists, the
output is not the input under another name, the output bucket takes writes, and with
``overwrite`` false nothing is at the output yet). Per-request files live in a temporary folder
that is always removed. An output object is uploaded only once its local file is complete, so a
failed job leaves nothing at its key. The errors raised carry their HTTP status (``errors``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from stereocrafter.echo import bounded, echo
from stereocrafter.errors import (
    DeadlineExceededError,
    InputNotFoundError,
    LimitExceededError,
    S3AccessDeniedError,
    ServiceStoppingError,
    StereoCrafterError,
)
from stereocrafter.jobs.context import Job
from stereocrafter.jobs.local import ConversionResult, convert_file, depth_file, stored_depth_shape
from stereocrafter.jobs.publish import write_report
from stereocrafter.jobs.records import (
    MAX_RECORD_BYTES,
    RECIPE_METADATA,
    make_record,
    parse_record,
    recipe,
    recipe_digest,
    record_location,
    reusable,
)
from stereocrafter.jobs.report import QualityReport
from stereocrafter.locations import S3Location
from stereocrafter.media.depthstore import read_depth
from stereocrafter.media.video_io import VideoInfo, check_packets, probe
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.serving.schemas import DepthResponse, InvocationRequest, InvocationResponse, Padding
from stereocrafter.serving.storage import ObjectInfo
from stereocrafter.settings import Settings
from stereocrafter.stereo.depthmap import AlignedDepth

logger = logging.getLogger(__name__)
Answer = TypeVar("Answer", InvocationResponse, DepthResponse)


def _begin(job: Job, request: InvocationRequest, also: tuple[S3Location, ...] = ()) -> ObjectInfo:
    """The shared prelude: the stop check's first run, ``storage.preflight`` (with ``also``: more
    objects the job will write) and the input's size against its limit; the input's HeadObject."""
    job.stop.check()
    checked = time.perf_counter()
    head: ObjectInfo = job.storage.preflight(
        request.s3_input_uri, request.output, overwrite=request.overwrite, also=also, stop=job.stop
    )
    check_input_size(head.size, job.settings)
    job.timed("preflight", checked)
    return head


def _identity(location: S3Location, info: ObjectInfo) -> dict[str, Any]:
    return {"uri": location.uri, "size": info.size, "etag": info.etag}


def _recipe(
    job: Job, request: InvocationRequest, source: ObjectInfo | None, depth: ObjectInfo | None = None
) -> dict[str, Any]:
    """What this task's output is made from (``jobs.records.recipe``): the segment and the stored
    depth by size and ETag (HeadObject here when not given), the resolved config, the weights,
    and a stereo task's own fields."""
    storage, stop = job.storage, job.stop
    source = source or storage.head(request.s3_input_uri, stop=stop)
    if request.depth_uri is not None and depth is None:
        depth = storage.head(request.depth_uri, stop=stop)
    inputs = {"segment": _identity(request.s3_input_uri, source)}
    if request.task == "depth":
        return recipe(job, "depth", inputs)
    if request.depth_uri is not None and depth is not None:
        inputs["depth"] = _identity(request.depth_uri, depth)
    aligned = {k: getattr(request, k) for k in ("depth_scale", "depth_shift", "depth_range")}
    return recipe(job, "stereo", inputs, mode=request.mode, report=request.report, **aligned)


def _recorded(job: Job, request: InvocationRequest, made_of: dict[str, Any]) -> dict[str, Any] | None:
    """``reuse``: the recorded answer of the output when it exists as recorded and was made from
    ``made_of``; None otherwise (one HeadObject and one small GET)."""
    started = time.perf_counter()
    made = job.storage.head_if_readable(request.output, job.stop)
    answer = None
    if made is not None:
        with job.folder() as tmp:
            try:
                job.storage.download(record_location(request.output.uri), tmp / "record.json",
                                     max_bytes=MAX_RECORD_BYTES, stop=job.stop)  # fmt: skip
            except (InputNotFoundError, S3AccessDeniedError, LimitExceededError):
                return None
            record = parse_record((tmp / "record.json").read_bytes())
        answer = reusable(record, made_of, _made(made))
    job.timed("reuse_check", started)
    return answer


def _again(job: Job, request: InvocationRequest, kind: type[Answer]) -> Answer | None:
    """``reuse``: the recorded answer given again (this job's id, times and slot time, ``reused``,
    the request's own output URI), or None when there is none or it is not a valid answer (a
    record written by something else: the work is done again)."""
    answer = _recorded(job, request, _recipe(job, request, None))
    if answer is None:
        return None
    target = "depth_output_uri" if request.task == "depth" else "s3_output_uri"
    fields = {**answer, target: request.output.uri, "request_id": job.request_id, "started_at": job.started,
              "finished_at": time.time(), "timings": {k: round(v, 3) for k, v in job.timings.items()},
              "gpu_seconds": job.gpu_seconds(), "cost": job.cost(), "reused": True,
              "made_gpu_seconds": answer.get("gpu_seconds"), "made_cost": answer.get("cost")}  # fmt: skip
    try:
        return kind(**fields)
    except ValidationError:
        logger.warning("request %s: the record beside %s holds no valid answer; converting again",
                       job.request_id, echo(request.output.uri))  # fmt: skip
        return None


def _made(info: ObjectInfo) -> dict[str, Any]:
    """An S3 output's identity as a record holds it: size, ETag and the recipe digest it carries."""
    return {"size": info.size, "etag": info.etag, "recipe": info.metadata.get(RECIPE_METADATA)}


def _stamp(made_of: dict[str, Any]) -> dict[str, str]:
    """The user metadata an output is uploaded with: its recipe's digest (``jobs.records``)."""
    return {RECIPE_METADATA: recipe_digest(made_of)}


def _record(job: Job, output: S3Location, made_of: dict[str, Any], answer: BaseModel) -> None:
    """The record beside a finished output (``jobs.records``), written only when the object there is
    still the one this job uploaded (it carries this recipe's digest): another writer's bytes are
    never recorded under this recipe. A failure is logged, never the job's: the output stands, and
    a rerun does the work again."""
    try:
        made = job.storage.head(output, stop=job.stop)
        if made.metadata.get(RECIPE_METADATA) != recipe_digest(made_of):
            logger.warning("request %s: %s was replaced by another writer after this job's upload; "
                           "no record written", job.request_id, echo(output.uri))  # fmt: skip
            return
        with job.folder() as tmp:
            doc = make_record(made_of, _made(made), answer.model_dump())
            (tmp / "record.json").write_text(json.dumps(doc, sort_keys=True))
            target = record_location(output.uri)
            job.storage.upload(tmp / "record.json", target, content_type="application/json", stop=job.stop)
    except Exception as err:
        logger.warning("request %s: no record written beside %s (%s: %s)", job.request_id, echo(output.uri),
                       type(err).__name__, bounded(str(err), 300))  # fmt: skip


def run_job(
    pipeline: StereoPipeline, job: Job, request: InvocationRequest
) -> InvocationResponse | DepthResponse:
    """One /invocations job under ``job`` (its resolved config, storage, stop check, encoder):
    checks -> S3 download -> limits -> conversion -> S3 upload (see the module's docstring); a
    ``depth_uri`` must exist too, and be under its size limit, before any download. ``task:
    "depth"`` runs stage 1 only (``run_depth_job``). The stop check (``guard.Deadline``) runs
    before the download, before the conversion and inside it.
    """
    if request.task == "depth":
        return run_depth_job(pipeline, job, request)
    output_uri, storage, stop, timings = request.output, job.storage, job.stop, job.timings
    # with reuse, before the preflight: an output that may be reused is not a 409
    if request.reuse and (again := _again(job, request, InvocationResponse)) is not None:
        return again
    head = _begin(job, request, also=report_guarded(output_uri, request))
    # 404 / 403 before any work
    stored = storage.head(request.depth_uri, stop=stop) if request.depth_uri is not None else None
    made_of = _recipe(job, request, head, stored)
    depth_bytes = max_depth_bytes(job.settings)
    if stored is not None:
        stored_size = stored.size
        if stored_size > depth_bytes:
            raise LimitExceededError(f"the stored depth is {stored_size} bytes; the limit is {depth_bytes}")
    with job.folder() as tmp:
        source = tmp / "input"
        output = tmp / "output.mp4"
        info = fetch_segment(job, request.s3_input_uri, source)
        raw = None
        if request.depth_uri is not None:
            loaded = time.perf_counter()
            storage.download(request.depth_uri, tmp / "depth.mkv", max_bytes=depth_bytes, stop=stop)
            raw = read_depth(tmp / "depth.mkv", stored_depth_shape(info, job.config), stop).depth
            job.timed("depth_load", loaded)
        depth = AlignedDepth.from_fields(
            raw,
            depth_scale=request.depth_scale,
            depth_shift=request.depth_shift,
            depth_range=request.depth_range,
        )
        report = QualityReport() if request.report else None
        result = convert_file(
            pipeline, source, output, mode=request.mode, job=job, hooks=RunHooks(observer=report), depth=depth
        )
        upload_started = time.perf_counter()
        storage.upload(output, output_uri, overwrite=request.overwrite, stop=stop, metadata=_stamp(made_of))
        timings.update(result.timings)
        job.timed("upload", upload_started)
        reported: dict[str, Any] = {}
        if report is not None:  # after the video, and never failing the job
            reported = publish_report(report, job, output_uri, tmp, overwrite=request.overwrite,
                                      encoder=result.encoder, stereo_tag=result.stereo_tag)  # fmt: skip
    response = InvocationResponse(
        s3_output_uri=output_uri.uri,
        mode=request.mode,
        preset=job.config.preset,
        frames=result.num_frames,
        fps=str(result.fps),
        width=result.stored_width,
        height=result.stored_height,
        padded=padding_of(result),
        source_width=info.width,
        source_height=info.height,
        has_audio=result.has_audio,
        timings={k: round(v, 3) for k, v in timings.items()},
        request_id=job.request_id,
        started_at=job.started,
        finished_at=time.time(),
        gpu_seconds=job.gpu_seconds(),
        cost=job.cost(),
        tiny_weights=job.tiny,
        encoder=result.encoder,
        stereo_tag=result.stereo_tag,
        **reported,
    )
    _record(job, output_uri, made_of, response)
    return response


def run_depth_job(pipeline: StereoPipeline, job: Job, request: InvocationRequest) -> DepthResponse:
    """``task: "depth"``: the same prelude and limits as a conversion, then stage 1 alone; the raw
    depth goes to ``depth_output_uri`` (``depthstore`` format) and its summary into the answer;
    with ``reuse``, the recorded answer of a stored depth made from the same segment and config."""
    if request.reuse and (again := _again(job, request, DepthResponse)) is not None:
        return again
    made_of = _recipe(job, request, _begin(job, request))
    output_uri, timings = request.output, job.timings
    with job.folder() as tmp:
        source, output = tmp / "input", tmp / "depth.mkv"
        fetch_segment(job, request.s3_input_uri, source)
        extra = {"preset": job.config.preset, "seed": request.seed, "input": request.s3_input_uri.uri}
        result = depth_file(pipeline, source, output, job=job, extra=extra)
        upload_started = time.perf_counter()
        job.storage.upload(
            output,
            output_uri,
            content_type="video/x-matroska",
            overwrite=request.overwrite,
            stop=job.stop,
            metadata=_stamp(made_of),
        )
        timings.update(result.timings)
        job.timed("upload", upload_started)
    response = DepthResponse(
        depth_output_uri=output_uri.uri,
        preset=job.config.preset,
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
        request_id=job.request_id,
        started_at=job.started,
        finished_at=time.time(),
        gpu_seconds=job.gpu_seconds(),
        cost=job.cost(),
        tiny_weights=job.tiny,
    )
    _record(job, output_uri, made_of, response)
    return response


def check_input_size(size: int, settings: Settings) -> None:
    if size > settings.max_input_bytes:
        raise LimitExceededError(f"the input is {size} bytes; the limit is {settings.max_input_bytes} bytes")


def max_depth_bytes(settings: Settings) -> int:
    """A stored depth is refused above what FFV1 could take for ``max_frames`` frames at the depth
    stage's largest size (1024 x 1024, 16 bits; FFV1 never stores much above its raw size)."""
    return settings.max_frames * (2 * 1024 * 1024 + 65536)


def fetch_segment(job: Job, uri: S3Location, path: Path) -> VideoInfo:
    """Download the segment and check it against the limits before any model work; the job's
    stop check runs throughout."""
    settings, stop = job.settings, job.stop
    download_started = time.perf_counter()
    job.storage.download(uri, path, max_bytes=settings.max_input_bytes, stop=stop)
    job.timed("download", download_started)
    info = probe(path, stop)
    check_packets(path, info, stop)  # a truncated segment is a 422 now, not minutes into the job
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
    job: Job,
    output: S3Location,
    tmp: Path,
    *,
    overwrite: bool = True,
    encoder: dict[str, Any] | None = None,
    stereo_tag: str | None = None,
) -> dict[str, Any]:
    """Write the report beside the uploaded video (``report_locations``); the response's report
    fields. Any failure is logged and named in ``report_error``: the job and its video stand.
    The job's stop check and ``overwrite`` apply to the report's objects as to the video; a
    deadline or SIGTERM that comes after the video was uploaded ends the report, not the job."""
    summary: dict[str, Any] | None = None
    try:
        summary = report.clip() if report.error is None else None
        targets = report_locations(output)
        job.stop.check()
        files = {kind: tmp / f"report.{kind}" for kind in targets}
        write_report(report, job, files["json"], files["png"], encoder, stereo_tag)
        for kind, target in targets.items():
            content = "application/json" if kind == "json" else "image/png"
            job.storage.upload(files[kind], target, content_type=content, overwrite=overwrite, stop=job.stop)
    except Exception as err:
        logger.warning("request %s: no report: %s: %s", job.request_id, type(err).__name__, err)
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
