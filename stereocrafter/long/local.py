"""Long videos on one machine: ``stereocrafter convert-long`` (cut -> depth per segment -> align ->
stereo per segment -> stitch), through the same ``convert_segments`` as the service's callers.

``LocalBackend`` runs the two tasks of the service (``task: "depth"`` and the stereo task with a
stored, aligned depth) on local files with the same functions the service's jobs call
(``convert.depth_file``, ``convert.convert_file``); a segment is a frame range of the source
(``LocalSegment``), so nothing is cut or re-encoded before the conversion.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stereocrafter.bounds import DEFAULT_MODE
from stereocrafter.errors import StereoCrafterError, StitchError
from stereocrafter.jobs.context import Encoding, Job
from stereocrafter.jobs.local import convert_file, depth_file, segment_info, stored_depth_shape
from stereocrafter.jobs.records import file_identity, read_local, recipe, write_local
from stereocrafter.long.segments import SegmentsResult, convert_segments
from stereocrafter.long.tasks import ALIGNED
from stereocrafter.media.depthstore import read_depth
from stereocrafter.media.stitch import StitchResult, stitch
from stereocrafter.media.video_io import MediaError, probe
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import Observer, Progress, RunHooks
from stereocrafter.stereo.depthmap import AlignedDepth

MIN_TAIL_FRAMES = 8  # a last segment shorter than this joins the one before it


@dataclass(frozen=True)
class LocalSegment:
    path: Path
    start: int  # first frame
    count: int  # frames

    def __str__(self) -> str:
        return f"{self.path.name}[{self.start}:{self.start + self.count}]"


def cut_segments(path: Path, seconds: float) -> list[LocalSegment]:
    """Frame ranges of about ``seconds`` each (whole frames, at the video's rate)."""
    if not seconds > 0:
        raise ValueError(f"the segment length must be > 0 seconds, got {seconds}")
    info = probe(path)
    size = max(1, round(seconds * info.fps))
    starts = list(range(0, info.num_frames, size))
    if len(starts) > 1 and info.num_frames - starts[-1] < MIN_TAIL_FRAMES:
        starts.pop()
    ends = [*starts[1:], info.num_frames]
    return [LocalSegment(Path(path), a, b - a) for a, b in zip(starts, ends, strict=True)]


class LocalBackend:
    """``convert_segments``'s backend on this machine: one pipeline, one task at a time.

    ``observer_factory(segment)`` may give each stereo task an ``Observer`` (a quality report,
    or a test's probe of the disparity it used).
    """

    # of a segment's stereo fields (``long.tasks``), what a local task takes; the rest come from
    # its pipeline's config
    STEREO_OPTIONS = frozenset({"mode", "reuse", *ALIGNED})

    def __init__(
        self,
        pipeline: StereoPipeline,
        workdir: Path,
        *,
        encoding: Encoding | None = None,
        progress: Progress | None = None,
        observer_factory: Callable[[LocalSegment], Observer | None] | None = None,
    ) -> None:
        self.pipeline, self.workdir = pipeline, Path(workdir)
        self.job = Job(
            config=pipeline.config,
            encoding=encoding or Encoding(),
            tiny=pipeline.tiny,
            made_by=pipeline.provenance,
        )
        self.progress, self.observer_factory = progress, observer_factory
        self._lock = threading.Lock()  # one device: tasks run one after another

    def depth_location(self, index: int, output: str) -> str:
        return str(self.workdir / f"segment-{index:04d}.depth.mkv")

    def _identity(self, source: LocalSegment) -> dict[str, Any]:
        return {"path": str(source.path.resolve()), "start": source.start, "count": source.count,
                **(file_identity(source.path) or {})}  # fmt: skip

    def depth(self, source: LocalSegment, depth_output: str, **options: Any) -> dict[str, Any]:
        """The depth task; with ``reuse`` the recorded answer of a stored depth made from the same
        segment, config, code and weight files (``jobs.records``) instead of a depth pass."""
        reuse = bool(options.pop("reuse", False))
        if options:
            raise TypeError(
                f"the local backend takes its preset and seed from its pipeline, not {sorted(options)}"
            )
        made_of = recipe(self.job, "depth", {"segment": self._identity(source)})
        if reuse and (answer := read_local(depth_output, made_of)) is not None:
            return _again(answer)
        with self._lock, _timed_failure():
            result = depth_file(
                self.pipeline,
                source.path,
                depth_output,
                job=self.job,
                frames=(source.start, source.count),
                hooks=RunHooks(progress=self.progress),
            )
        answer = {
            "task": "depth",
            "depth_output_uri": depth_output,
            "frames": result.info.num_frames,
            "depth_bytes": result.depth_bytes,
            **result.summary,
            "timings": result.timings,
            # a local job holds this machine's device for its whole run
            "gpu_seconds": round(result.timings.get("total", 0.0), 3),
            "cost": None,
        }
        write_local(depth_output, made_of, answer)
        return answer

    def stereo(self, source: LocalSegment, output: str, **options: Any) -> dict[str, Any]:
        unknown = set(options) - self.STEREO_OPTIONS
        if unknown:
            raise TypeError(
                f"the local backend takes these from its pipeline's config, not {sorted(unknown)}"
            )
        reuse = bool(options.pop("reuse", False))
        inputs = {"segment": self._identity(source)}
        if options.get("depth_uri"):
            inputs["depth"] = {
                "path": str(options["depth_uri"]),
                **(file_identity(options["depth_uri"]) or {}),
            }
        made_of = recipe(self.job, "stereo", inputs, mode=options.get("mode", DEFAULT_MODE),
                         **{k: options.get(k) for k in ALIGNED if k != "depth_uri"})  # fmt: skip
        if reuse and (answer := read_local(output, made_of)) is not None:
            return _again(answer)
        raw = None
        if options.get("depth_uri"):
            info = segment_info(source.path, (source.start, source.count))
            raw = read_depth(options["depth_uri"], stored_depth_shape(info, self.pipeline.config)).depth
        depth = AlignedDepth.from_fields(
            raw,
            depth_scale=options.get("depth_scale"),
            depth_shift=options.get("depth_shift"),
            depth_range=options.get("depth_range"),
        )
        observer = self.observer_factory(source) if self.observer_factory else None
        with self._lock, _timed_failure():
            result = convert_file(
                self.pipeline, source.path, output, mode=options.get("mode", DEFAULT_MODE), job=self.job,
                hooks=RunHooks(progress=self.progress, observer=observer),
                frames=(source.start, source.count), depth=depth,
            )  # fmt: skip
        held = round(result.timings.get("total", 0.0), 3)  # a local job holds the device throughout
        answer = {"output": output, "frames": result.num_frames, "fps": str(result.fps),
                  "timings": result.timings, "encoder": result.encoder, "stereo_tag": result.stereo_tag,
                  "gpu_seconds": held, "cost": None}  # fmt: skip
        write_local(output, made_of, answer)
        return answer


@contextmanager
def _timed_failure() -> Iterator[None]:
    """A task that fails says how long it held this machine's device (``gpu_seconds`` on the error,
    as the service's error answer does): the run's cost counts it."""
    started = time.monotonic()
    try:
        yield
    except Exception as err:
        err.gpu_seconds = round(time.monotonic() - started, 3)  # type: ignore[attr-defined]
        raise


def _again(answer: dict[str, Any]) -> dict[str, Any]:
    """A recorded answer given again: this run spent nothing on it; what making it took stays known."""
    return {**answer, "reused": True, "gpu_seconds": 0.0, "cost": None, "timings": {},
            "made_gpu_seconds": answer.get("gpu_seconds"), "made_cost": answer.get("cost")}  # fmt: skip


@dataclass(frozen=True)
class LongResult:
    segments: list[LocalSegment]
    result: SegmentsResult | None  # None with ``align=False``
    stitched: StitchResult | None  # None with ``plan_only``


def convert_long(
    pipeline: StereoPipeline,
    source: Path,
    output: Path,
    *,
    segment_seconds: float,
    workdir: Path,
    mode: str = DEFAULT_MODE,
    align: bool = True,
    plan_only: bool = False,
    reuse: bool = True,
    encoding: Encoding | None = None,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> LongResult:
    """The whole local workflow, segment files in ``workdir``. ``align=False`` normalises every
    segment alone (what one plain request per segment gives), for comparison. ``reuse``: the
    segments already in ``workdir`` with their records (a run that was killed) are used again
    where they were made from the same source, config and encoder (``convert_segments``)."""
    segments = cut_segments(source, segment_seconds)
    backend = LocalBackend(pipeline, workdir, encoding=encoding, progress=progress)
    pairs = [(seg, str(workdir / f"segment-{i:04d}.mp4")) for i, seg in enumerate(segments)]
    result = None
    if align:
        result = convert_segments(pairs, backend, mode=mode, max_concurrency=1, plan_only=plan_only,
                                  reuse=reuse, log=log)  # fmt: skip
        if plan_only:
            return LongResult(segments, result, None)
        if result.failed:
            failures = "; ".join(f"{s.index}: {s.error}" for s in result.segments if s.error)
            raise RuntimeError(f"segments {result.failed} failed: {failures}")
    else:
        for seg, part in pairs:
            backend.stereo(seg, part, mode=mode, reuse=reuse)
    try:
        stitched = stitch([part for _, part in pairs], output, audio_from=source)
    except (StereoCrafterError, ValueError, OSError, MediaError) as err:
        message = err.message if isinstance(err, StereoCrafterError) else f"{type(err).__name__}: {err}"
        raise StitchError(
            f"stitching the converted segments failed ({message}); they are kept in {workdir}"
        ) from err
    return LongResult(segments, result, stitched)
