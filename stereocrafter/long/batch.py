"""A long video through SageMaker Batch Transform, without an endpoint (``convert_segments_batch``).

1. The depth manifest: one JSON line per segment, the body ``POST /invocations`` takes for the depth
   task, split into ``engine.files`` JSON-lines objects (Batch Transform hands whole objects to
   instances: one object would keep every instance but one idle).
2. One transform job over it (``engine.transform``): an answer per line, in the manifest's order.
3. ``long.align.align`` over the depth answers, here in the orchestrator, as ``convert_segments``
   does it.
4. The stereo manifest (each segment's stored depth, its map and its shot's range) and a second
   transform job. Both manifests ask for ``reuse``: a job run again over the same segments (after a
   failure, say) answers at once for every output already made (``jobs.records``).

The engine is SageMaker (``containerize.batch.SageMakerTransform``: CreateTransformJob with
``SplitType=Line`` and ``BatchStrategy=SingleRecord``) or the local driver that does what Batch
Transform does against any running service (``containerize.batch.LocalTransform``). No HTTP
library, no boto3 here: the manifests and answers are bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from stereocrafter.bounds import DEFAULT_MODE
from stereocrafter.long.align import align
from stereocrafter.long.segments import SegmentOutcome, SegmentsResult
from stereocrafter.long.tasks import DEPTH_TASK_OPTIONS, check_task_fields

# What a Batch Transform job is told by ``GET /execution-parameters`` and sent in CreateTransformJob:
# one record per request (a manifest line is one /invocations body, a few hundred bytes; 1 MB is the
# smallest payload limit SageMaker takes), and one request at a time per conversion slot (GPU), the
# rest waiting in SageMaker's queue rather than in the service's.
BATCH_STRATEGY = "SINGLE_RECORD"
MAX_PAYLOAD_MB = 1


class TransformEngine(Protocol):
    """Runs one transform job over ``requests`` (each an /invocations body) split into ``files``
    JSON-lines objects, and gives each line's answer in order (None for a line that failed; the
    job's ``failures`` says why)."""

    files: int

    def transform(self, name: str, parts: list[bytes]) -> list[list[dict[str, Any]] | None]: ...


def manifest(requests: Sequence[dict[str, Any]], files: int) -> list[bytes]:
    """``requests`` as JSON lines, in order, in at most ``files`` contiguous objects."""
    if not requests:
        return []
    count = max(1, min(files, len(requests)))
    size = -(-len(requests) // count)
    lines = [json.dumps(r, sort_keys=True, separators=(",", ":")).encode() + b"\n" for r in requests]
    return [b"".join(lines[i : i + size]) for i in range(0, len(lines), size)]


def answers(out: bytes | None, expected: int) -> list[dict[str, Any]] | None:
    """The answers of one ``.out`` object (``AssembleWith=Line``: one JSON answer per line); None
    when it is missing or does not hold ``expected`` answers (its part failed)."""
    if out is None:
        return None
    try:
        parsed = [json.loads(line) for line in out.decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, ValueError):
        return None
    if len(parsed) != expected or not all(isinstance(a, dict) for a in parsed):
        return None
    return parsed


def _run(engine: TransformEngine, name: str, requests: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
    """Each line's answer, in order, or for every line of a part that came back without answers,
    why (the part and the lines it held, counted from 0 over ``requests``)."""
    parts = manifest(requests, engine.files)
    if not parts:  # nothing to do (no segment has a depth): no job
        return []
    got = engine.transform(name, parts)
    flat: list[dict[str, Any] | str] = []
    for index, (part, answered) in enumerate(zip(parts, got, strict=True)):
        count, first = part.count(b"\n"), len(flat)
        if answered is not None and len(answered) == count:
            flat.extend(answered)
            continue
        lost = (f"{name} wrote no answers for its part {index} (lines {first}-{first + count - 1} of its "
                f"manifest): with SplitType=Line one failed record loses the answers of its whole part, "
                f"this line's too even if it was converted; the job's FailureReason and CloudWatch log "
                f"name the record, and a rerun's reuse answers at once for the outputs that were made"
                )  # fmt: skip
        flat.extend([lost] * count)
    return flat


def convert_segments_batch(
    segments: Sequence[tuple[str, str]],
    engine: TransformEngine,
    *,
    name: str,
    mode: str = DEFAULT_MODE,
    depth_uris: Sequence[str] | None = None,
    reuse: bool = True,
    robust: bool = True,
    extrapolate: bool = True,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> SegmentsResult:
    """Convert a long video's segments ((input URI, output URI) pairs, in playback order) with two
    transform jobs (``<name>-depth``, ``<name>-stereo``) and one depth scale across them; the same
    result as ``convert_segments``. ``options`` go to the stereo requests (``preset`` and ``seed``
    to the depth requests too). A failed record loses its whole part's answers (SageMaker writes no
    ``.out`` object for a part with a failed record): every segment of that part is reported failed,
    with the part named, and the other parts go on; ``engine.files`` parts, so the more parts, the
    fewer segments one failure takes with it. A rerun (``reuse``) answers at once for those that
    were converted."""
    check_task_fields("stereo", options)
    say = log or (lambda message: None)
    depth_at = list(depth_uris) if depth_uris is not None else [f"{out}.depth.mkv" for _, out in segments]
    if len(depth_at) != len(segments):
        raise ValueError("depth_uris must name one location per segment")
    outcomes = [SegmentOutcome(i, src, out, depth_at[i]) for i, (src, out) in enumerate(segments)]
    common = {"reuse": True} if reuse else {}
    depth_options = {k: v for k, v in options.items() if k in DEPTH_TASK_OPTIONS}
    depth_requests = [{"task": "depth", "s3_input_uri": o.source, "depth_output_uri": o.depth_uri,
                       **depth_options, **common} for o in outcomes]  # fmt: skip
    for o, answer in zip(outcomes, _run(engine, f"{name}-depth", depth_requests), strict=True):
        o.attempts["depth"] = 1
        _settle(o, "depth", answer)
    alignment = align([o.depth for o in outcomes], robust=robust, extrapolate=extrapolate)
    ready = [o for o in outcomes if o.depth is not None]
    stereo_requests = [{"s3_input_uri": o.source, "s3_output_uri": o.output, "mode": mode,
                        "depth_uri": o.depth_uri, **alignment.request_fields(o.index), **options, **common}
                       for o in ready]  # fmt: skip
    for o, answer in zip(ready, _run(engine, f"{name}-stereo", stereo_requests), strict=True):
        o.attempts["stereo"] = 1
        _settle(o, "stereo", answer)
    done = SegmentsResult(outcomes, alignment)
    say(done.reuse_line())
    say(done.cost_line())
    return done


def _settle(outcome: SegmentOutcome, stage: str, answer: dict[str, Any] | str) -> None:
    if isinstance(answer, str):  # its part's answers were lost (``_run``)
        outcome.error, outcome.stage = answer, stage
        return
    if stage == "depth":
        outcome.depth = answer
    else:
        outcome.result = answer
