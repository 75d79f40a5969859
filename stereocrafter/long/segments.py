"""A long video's segments converted with one depth scale, on any backend (``convert_segments``).

1. Depth tasks, in parallel: each segment's raw depth stored, its statistics and thumbnails back.
2. ``align``: per boundary an affine fit (or a scene cut), maps chained per shot, one range per shot.
3. Stereo tasks, in parallel, each with its stored depth, its map and its shot's range.

The backend is anything with ``depth``, ``stereo`` and ``depth_location`` (``SegmentBackend``): the
service over HTTP or SageMaker (``stereocrafter.client``) or this machine (``long.LocalBackend``).
No HTTP library, no torch: ``convert-long`` runs this without the client's dependencies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Protocol

from stereocrafter.bounds import DEFAULT_MODE
from stereocrafter.errors import ConversionError
from stereocrafter.long.align import Alignment, align
from stereocrafter.long.tasks import DEPTH_TASK_OPTIONS

# Errors of any backend that mean "no answer" (worth another attempt); a backend may add its own
# (its ``transient`` attribute, e.g. ``HttpClient``'s httpx transport errors).
TRANSIENT: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)


class SegmentBackend(Protocol):
    """What ``convert_segments`` needs: ``HttpClient``, ``SageMakerClient.async_backend(...)`` or
    ``stereocrafter.long.local.LocalBackend`` (local files, one machine)."""

    def depth(self, source: Any, depth_output: str, **options: Any) -> dict[str, Any]: ...

    def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]: ...

    def depth_location(self, index: int, output: str) -> str: ...


@dataclass
class SegmentOutcome:
    """One segment of ``convert_segments``: its depth summary, its stereo result, or its error."""

    index: int
    source: Any
    output: str
    depth_uri: str
    depth: dict[str, Any] | None = None  # the depth task's answer
    result: dict[str, Any] | None = None  # the stereo task's answer
    error: str | None = None
    error_code: str | None = None
    stage: str | None = None  # "depth" or "stereo": where it failed
    attempts: dict[str, int] = field(default_factory=dict)
    # what its failed attempts held of a GPU before they failed (the service's error answer says;
    # a local task is timed), and their cost (None: no price said)
    failed_gpu_seconds: float = 0.0
    failed_cost: float | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def reused(self) -> list[str]:
        """The tasks whose recorded answer was given again instead of doing them ("depth", "stereo")."""
        return [task for task, answer in (("depth", self.depth), ("stereo", self.result))
                if answer is not None and answer.get("reused")]  # fmt: skip


@dataclass
class SegmentsResult:
    segments: list[SegmentOutcome]
    alignment: Alignment

    @property
    def failed(self) -> list[int]:
        """Indices of the segments without a stereo result (a plan has none: see ``depth``)."""
        return [s.index for s in self.segments if s.error is not None]

    def _answers(self) -> list[dict[str, Any]]:
        return [a for s in self.segments for a in (s.depth, s.result) if a is not None]

    def _failed_cost(self) -> list[float]:
        return [s.failed_cost for s in self.segments if s.failed_cost is not None]

    @property
    def failed_gpu_seconds(self) -> float:
        """What this run's failed attempts held of a GPU before they failed."""
        return round(sum(s.failed_gpu_seconds for s in self.segments), 3)

    @property
    def gpu_seconds(self) -> float:
        """This run's slot-seconds (GPU): every answer's (a reused one's: its reuse check) and every
        failed attempt's."""
        answered = sum(float(a.get("gpu_seconds") or 0.0) for a in self._answers())
        return round(answered + self.failed_gpu_seconds, 3)

    @property
    def cost(self) -> float | None:
        """This run's cost: the answers' and the failed attempts' (None when none had a price)."""
        costs = [float(a["cost"]) for a in self._answers() if a.get("cost") is not None] + self._failed_cost()
        return round(sum(costs), 6) if costs else None

    @property
    def film_gpu_seconds(self) -> float:
        """What the film's outputs took to make: a reused output's from its record (when it was
        made), the others' from this run, and this run's failed attempts (an earlier run's failures
        are not known here)."""
        made = sum(float((a.get("made_gpu_seconds") if a.get("reused") else a.get("gpu_seconds")) or 0.0)
                   for a in self._answers())  # fmt: skip
        return round(made + self.failed_gpu_seconds, 3)

    @property
    def film_cost(self) -> float | None:
        """The film's cost, as ``film_gpu_seconds`` counts (None when nothing had a price)."""
        costs = [float(c) for a in self._answers()
                 if (c := a.get("made_cost") if a.get("reused") else a.get("cost")) is not None]  # fmt: skip
        costs += self._failed_cost()
        return round(sum(costs), 6) if costs else None

    @property
    def output_seconds(self) -> float:
        """The duration of the stereo outputs (frames / fps of each answer that says its fps)."""
        return self._seconds(reused=True)

    def _seconds(self, reused: bool) -> float:
        return float(
            sum(
                int(s.result["frames"]) / float(Fraction(str(s.result["fps"])))
                for s in self.segments
                if s.result is not None and s.result.get("fps") and (reused or not s.result.get("reused"))
            )
        )

    @property
    def reused(self) -> dict[str, int]:
        """How many segments' depth and stereo outputs were reused (``convert_segments(reuse=True)``)."""
        return {task: sum(task in s.reused for s in self.segments) for task in ("depth", "stereo")}

    def reuse_line(self) -> str:
        n, reused = len(self.segments), self.reused
        return (f"reused {reused['stereo']} of {n} segments' stereo outputs and {reused['depth']} of {n} "
                f"depths; the rest was converted")  # fmt: skip

    def cost_line(self) -> str:
        """GPU time and cost per output minute, as ``convert_segments`` logs it: this run's, and the
        whole film's when outputs were reused (a resumed run's own figures alone would make the
        film look nearly free)."""
        failed = self.failed_gpu_seconds
        note = f" ({failed:.1f} s of it in failed attempts)" if failed else ""
        film = _per_minute(self.film_gpu_seconds, self.film_cost, self.output_seconds, note)
        if not any(self.reused.values()):
            return film
        cost = self.cost
        run = (f"this run: GPU time {self.gpu_seconds:.1f} s{note} for {self._seconds(False):.1f} s of new "
               f"output" + (f", cost {cost:.4f}" if cost is not None else ""))  # fmt: skip
        return f"{run}; the film: {film}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "gpu_seconds": self.gpu_seconds,
            "cost": self.cost,
            "failed_gpu_seconds": self.failed_gpu_seconds,
            "film_gpu_seconds": self.film_gpu_seconds,
            "film_cost": self.film_cost,
            "output_seconds": round(self.output_seconds, 3),
            "failed": self.failed,
            "reused": self.reused,
            "alignment": self.alignment.as_dict(),
            "segments": [
                {"index": s.index, "output": s.output, "depth_uri": s.depth_uri, "ok": s.ok, "error": s.error,
                 "error_code": s.error_code, "stage": s.stage, "attempts": s.attempts, "reused": s.reused}
                for s in self.segments
            ],
        }  # fmt: skip


def _per_minute(gpu_seconds: float, cost: float | None, output_seconds: float, note: str = "") -> str:
    """GPU time (``note`` after it) and cost for ``output_seconds`` of output, and per output minute."""
    minutes = output_seconds / 60
    if minutes <= 0:
        return f"GPU time {gpu_seconds:.1f} s{note}; no output yet"
    line = (f"GPU time {gpu_seconds:.1f} s{note} for {output_seconds:.1f} s of output: "
            f"{gpu_seconds / 60 / minutes:.2f} GPU-minutes per output minute")  # fmt: skip
    return line + (f", cost {cost:.4f} ({cost / minutes:.4f} per output minute)" if cost is not None
                   else ", cost: no price configured (STEREOCRAFTER_INSTANCE_HOUR_PRICE)")  # fmt: skip


def retryable(err: BaseException, transient: tuple[type[BaseException], ...] = TRANSIENT) -> bool:
    """Worth another attempt: the service or the network failed, not the request (5xx, or no
    answer: one of the backend's ``transient`` errors, e.g. ``client.TRANSIENT`` with httpx's)."""
    if isinstance(err, ConversionError):  # not 507: the same segment needs the same memory
        return err.status >= 500 and err.status != 507
    return isinstance(err, transient)


def _attempt(
    outcome: SegmentOutcome, stage: str, call: Callable[[], dict[str, Any]], retries: int, backoff: float,
    log: Callable[[str], None], transient: tuple[type[BaseException], ...],
) -> dict[str, Any] | None:  # fmt: skip
    for attempt in range(1, retries + 2):
        outcome.attempts[stage] = attempt
        try:
            return call()
        except Exception as err:  # every failure is reported by index; none stops the others
            again = retryable(err, transient) and attempt <= retries
            log(
                f"segment {outcome.index}: {stage} attempt {attempt} failed: {err}"
                + ("; retrying" if again else "")
            )
            held, cost = getattr(err, "gpu_seconds", None), getattr(err, "cost", None)
            if isinstance(held, int | float):  # a GPU was held, and paid for, before it failed
                outcome.failed_gpu_seconds += float(held)
            if isinstance(cost, int | float):
                outcome.failed_cost = (outcome.failed_cost or 0.0) + float(cost)
            if not again:
                outcome.error, outcome.stage = f"{type(err).__name__}: {err}", stage
                outcome.error_code = err.code if isinstance(err, ConversionError) else None
                return None
            time.sleep(backoff * 2 ** (attempt - 1))
    return None  # pragma: no cover - the loop returns


def convert_segments(
    segments: Sequence[tuple[Any, str]],
    backend: SegmentBackend,
    *,
    mode: str = DEFAULT_MODE,
    max_concurrency: int = 4,
    retries: int = 2,
    backoff: float = 2.0,
    robust: bool = True,
    extrapolate: bool = True,
    plan_only: bool = False,
    depth_uris: Sequence[str] | None = None,
    reuse: bool = True,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> SegmentsResult:
    """Convert a long video's segments ((input, output) pairs, in playback order) with one depth
    scale across them.

    1. Depth tasks, ``max_concurrency`` at a time: each segment's raw depth is stored (beside its
       output unless ``depth_uris`` says where) and its statistics and thumbnails come back.
    2. ``stereocrafter.long.align.align``: per boundary a robust affine fit (or a scene cut, not
       chained), maps chained from each shot's middle segment, one range per shot.
    3. Stereo tasks, ``max_concurrency`` at a time, each with its stored depth (no second depth
       pass), its map and its shot's range. Skipped with ``plan_only`` (``plan_segments``).

    ``reuse`` (default): every task asks its backend to give the recorded answer of an output
    that exists and was made from the same request, input, config, weights and encoder
    (``jobs.records``) instead of doing it again: a rerun after a crash does only what is
    missing, and a segment whose depth changed is redone with every segment its alignment
    changed. ``robust`` and ``extrapolate``: see ``stereocrafter.long.align.align``. ``options`` go to the
    stereo tasks (``preset`` and ``seed`` to the depth tasks too). A failed
    task is retried ``retries`` times when the service or the network failed (5xx, no answer),
    with exponential ``backoff``; a segment that still fails is reported by index in the result
    (its neighbours' boundaries are not chained through it) and the others go on.
    """
    if max_concurrency < 1 or retries < 0:
        raise ValueError("max_concurrency must be >= 1 and retries >= 0")
    if depth_uris is not None and len(depth_uris) != len(segments):
        raise ValueError("depth_uris must name one location per segment")
    say = log or (lambda message: None)
    outcomes = [
        SegmentOutcome(i, source, output, depth_uris[i] if depth_uris else backend.depth_location(i, output))
        for i, (source, output) in enumerate(segments)
    ]
    depth_options = {k: v for k, v in options.items() if k in DEPTH_TASK_OPTIONS}
    if reuse:
        depth_options["reuse"] = options["reuse"] = True
    transient = getattr(backend, "transient", TRANSIENT)

    def depth(o: SegmentOutcome) -> None:
        o.depth = _attempt(o, "depth", lambda: backend.depth(o.source, o.depth_uri, **depth_options),
                           retries, backoff, say, transient)  # fmt: skip

    with ThreadPoolExecutor(max_concurrency) as pool:
        list(pool.map(depth, outcomes))
    alignment = align([o.depth for o in outcomes], robust=robust, extrapolate=extrapolate)
    if plan_only:
        return SegmentsResult(outcomes, alignment)

    def stereo(o: SegmentOutcome) -> None:
        fields = {**options, "mode": mode, "depth_uri": o.depth_uri, **alignment.request_fields(o.index)}
        o.result = _attempt(
            o,
            "stereo",
            lambda: backend.stereo(o.source, o.output, **fields),
            retries,
            backoff,
            say,
            transient,
        )

    with ThreadPoolExecutor(max_concurrency) as pool:
        list(pool.map(stereo, [o for o in outcomes if o.depth is not None]))
    done = SegmentsResult(outcomes, alignment)
    if reuse:
        say(done.reuse_line())
    say(done.cost_line())
    return done


def plan_segments(
    segments: Sequence[tuple[Any, str]], backend: SegmentBackend, **kwargs: Any
) -> SegmentsResult:
    """The depth tasks and the alignment only (no stereo task); ``result.alignment.table()`` shows
    the fits, cuts, maps and ranges ``convert_segments`` would use."""
    return convert_segments(segments, backend, plan_only=True, **kwargs)
