"""Python client for callers (the video-worker): one call per segment, on either backend.

- ``HttpClient``: the service over HTTP (a GPU EC2 host, or ``bentoml serve`` locally).
- ``SageMakerClient``: a SageMaker endpoint through ``sagemaker-runtime``: real-time
  ``invoke_endpoint`` (``convert``) or asynchronous ``invoke_endpoint_async`` (``convert_async``,
  which puts the request JSON in S3 and waits for SageMaker's output object).

``convert_segments`` converts a long video's segments, in parallel, with one depth scale from the
first frame to the last (depth tasks, alignment by ``stereocrafter.align``, then stereo tasks that
reuse the stored depth); ``plan_segments`` stops after the alignment, for debugging.

Both return the service's JSON result as a dict (``result["report"]``: the quality report's clip
figures, ``result["report_uris"]``: its JSON and PNG beside the output) and raise a
``ConversionError`` subclass chosen by the HTTP status the service answered (or, where two
meanings share a status, by the error code), carrying ``status``, ``code``, ``message`` and
``request_id``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from stereocrafter.align import Alignment, align
from stereocrafter.schemas import split_s3_uri


class ConversionError(Exception):
    """The service refused or failed the conversion."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class BadRequest(ConversionError):
    """400: malformed request, bad mode or URI."""


class AccessDenied(ConversionError):
    """403: the service may not read the input or write the output."""


class InputNotFound(ConversionError):
    """404: no input object."""


class SegmentTooLarge(ConversionError):
    """413: over the configured bytes, frames or resolution."""


class RequestTooLarge(BadRequest):
    """413 body_too_large: the request body itself is over the service's limit (64 KiB)."""


class InvalidDepth(ConversionError):
    """422 invalid_depth / depth_mismatch: a ``depth_uri`` that is damaged or from another segment."""


class OutputExists(ConversionError):
    """409: ``overwrite=False`` and an object is already at the output URI (nothing was written)."""


class InvalidVideo(ConversionError):
    """422: the input is not a decodable video."""


class StorageUnavailable(ConversionError):
    """502: S3 failed or could not be reached."""


class ServiceNotReady(ConversionError):
    """503: models still loading, failed, or no weights configured: retry later or elsewhere."""


class GpuFailed(ServiceNotReady):
    """503 gpu_failed: the instance's GPU failed during this job; it marked itself unhealthy."""


class DeadlineExceeded(ConversionError):
    """504 deadline_exceeded: the job passed its deadline and was stopped; nothing was written."""


class InsufficientGpuMemory(ConversionError):
    """507 insufficient_gpu_memory: the segment needs more GPU memory than the instance has; try
    the fast preset, a smaller tile_num, or a shorter or smaller segment."""


class ServiceError(ConversionError):
    """500 or any other unexpected status."""


_BY_STATUS: dict[int, type[ConversionError]] = {
    400: BadRequest,
    403: AccessDenied,
    404: InputNotFound,
    409: OutputExists,
    413: SegmentTooLarge,
    422: InvalidVideo,
    502: StorageUnavailable,
    503: ServiceNotReady,
    507: InsufficientGpuMemory,
}

# Codes that share a status with another meaning.
_BY_CODE: dict[str, type[ConversionError]] = {
    "body_too_large": RequestTooLarge,
    "invalid_depth": InvalidDepth,
    "depth_mismatch": InvalidDepth,
    "gpu_failed": GpuFailed,
    "deadline_exceeded": DeadlineExceeded,  # a 504 without it is a gateway's or BentoML's timeout
}


def error_from(status: int, body: bytes | str) -> ConversionError:
    """The typed error for a non-200 answer (the body is the service's JSON error, or anything)."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        data = {"error": "unexpected_response", "message": text[:500]}
    cls = _BY_CODE.get(str(data.get("error"))) or _BY_STATUS.get(status, ServiceError)
    return cls(status, str(data.get("error", "")), str(data.get("message", "")), data.get("request_id"))


def request_body(input_uri: str, output_uri: str, mode: str = "anaglyph", **options: Any) -> dict[str, Any]:
    return {"s3_input_uri": input_uri, "s3_output_uri": output_uri, "mode": mode, **options}


def depth_body(input_uri: str, depth_output_uri: str, **options: Any) -> dict[str, Any]:
    return {"task": "depth", "s3_input_uri": input_uri, "depth_output_uri": depth_output_uri, **options}


def default_depth_location(index: int, output_uri: str) -> str:
    """Where a segment's depth is stored unless told otherwise: beside its output."""
    return f"{output_uri}.depth.mkv"


class HttpClient:
    """``HttpClient("http://host:8080").convert("s3://my-videos/in/a.mp4", "s3://my-videos/out/a.mp4")``."""

    def __init__(self, base_url: str, *, timeout: float = 7200.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def ping(self, timeout: float = 2.0) -> bool:
        """True when the service answers /ping with 200 (ready, or up without weights)."""
        try:
            return httpx.get(f"{self.base_url}/ping", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def convert(
        self, input_uri: str, output_uri: str, mode: str = "anaglyph", **options: Any
    ) -> dict[str, Any]:
        return self.invoke(request_body(input_uri, output_uri, mode, **options))

    def depth(self, input_uri: str, depth_output_uri: str, **options: Any) -> dict[str, Any]:
        """The depth task: stage 1 alone, the raw depth stored at ``depth_output_uri``; returns its
        statistics and thumbnails (what ``convert_segments`` aligns segments with)."""
        return self.invoke(depth_body(input_uri, depth_output_uri, **options))

    # ``convert_segments``'s backend interface.
    def stereo(self, input_uri: str, output_uri: str, **options: Any) -> dict[str, Any]:
        return self.convert(input_uri, output_uri, **options)

    depth_location = staticmethod(default_depth_location)

    def invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.base_url}/invocations", json=body, timeout=self.timeout)
        if response.status_code != 200:
            raise error_from(response.status_code, response.content)
        result: dict[str, Any] = response.json()
        return result


class SageMakerClient:
    """A SageMaker endpoint running this service's image."""

    def __init__(self, endpoint_name: str, *, runtime: Any = None, s3: Any = None) -> None:
        import boto3

        self.endpoint_name = endpoint_name
        self.runtime = runtime or boto3.client("sagemaker-runtime")
        self.s3 = s3 or boto3.client("s3")

    def convert(
        self, input_uri: str, output_uri: str, mode: str = "anaglyph", **options: Any
    ) -> dict[str, Any]:
        """Real-time invocation (SageMaker cuts these off after 60 s: short segments only)."""
        body = json.dumps(request_body(input_uri, output_uri, mode, **options))
        try:
            response = self.runtime.invoke_endpoint(
                EndpointName=self.endpoint_name,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
        except self.runtime.exceptions.ModelError as err:
            # The container answered with an error: SageMaker passes its status and body on.
            info = err.response.get("OriginalStatusCode"), err.response.get("OriginalMessage", "")
            raise error_from(int(info[0] or 500), info[1] or "") from None
        result: dict[str, Any] = json.loads(response["Body"].read())
        return result

    def convert_async(
        self,
        input_uri: str,
        output_uri: str,
        mode: str = "anaglyph",
        *,
        request_prefix: str,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
        **options: Any,
    ) -> dict[str, Any]:
        """Asynchronous invocation: the request JSON goes to ``request_prefix`` (an s3:// prefix),
        SageMaker runs it (up to an hour) and writes the service's answer to its output location,
        or to the failure location on error; this waits for either."""
        body = request_body(input_uri, output_uri, mode, **options)
        return self.invoke_async(
            body, request_prefix=request_prefix, timeout=timeout, poll_interval=poll_interval
        )

    def async_backend(
        self, request_prefix: str, *, timeout: float = 3600.0, poll_interval: float = 5.0
    ) -> SageMakerAsyncBackend:
        """This endpoint as a ``convert_segments`` backend, through asynchronous invocations."""
        return SageMakerAsyncBackend(self, request_prefix, timeout, poll_interval)

    def invoke_async(
        self,
        request: dict[str, Any],
        *,
        request_prefix: str,
        timeout: float = 3600.0,
        poll_interval: float = 5.0,
    ) -> dict[str, Any]:
        """Any request body (either task) through ``invoke_endpoint_async``; waits for the answer."""
        bucket, prefix = split_s3_uri(request_prefix.rstrip("/") + "/x")
        key = f"{prefix[:-1]}{uuid.uuid4().hex}.json"
        body = json.dumps(request).encode()
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        response = self.runtime.invoke_endpoint_async(
            EndpointName=self.endpoint_name,
            InputLocation=f"s3://{bucket}/{key}",
            ContentType="application/json",
            Accept="application/json",
            InvocationTimeoutSeconds=int(min(max(timeout, 1), 3600)),
        )
        locations = [(response["OutputLocation"], False)]
        if response.get("FailureLocation"):
            locations.append((response["FailureLocation"], True))
        deadline = time.monotonic() + timeout
        while True:
            for location, failed in locations:
                found = self._read(location)
                if found is not None:
                    if failed:
                        raise _failure(found)
                    result: dict[str, Any] = json.loads(found)
                    return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"no result at {response['OutputLocation']} after {timeout:.0f} s")
            time.sleep(poll_interval)

    def _read(self, uri: str) -> bytes | None:
        bucket, key = split_s3_uri(uri)
        try:
            data: bytes = self.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self.s3.exceptions.NoSuchKey:
            return None
        return data


def _failure(body: bytes) -> ConversionError:
    """SageMaker's failure object holds the container's error answer (status unknown to us: take it
    from the body's error code when it is one of the service's)."""
    by_code = {
        "bad_request": 400,
        "s3_access_denied": 403,
        "input_not_found": 404,
        "segment_too_large": 413,
        "invalid_video": 422,
        "invalid_depth": 422,
        "depth_mismatch": 422,
        "output_exists": 409,
        "deadline_exceeded": 504,
        "insufficient_gpu_memory": 507,
        "gpu_failed": 503,
        "shutting_down": 503,
        "non_finite_output": 500,
        "s3_unavailable": 502,
        "not_ready": 503,
        "weights_missing": 503,
    }
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = {}
    status = by_code.get(str(data.get("error", "")) if isinstance(data, dict) else "", 500)
    return error_from(status, body)


class SageMakerAsyncBackend:
    """A SageMaker endpoint as a ``convert_segments`` backend (asynchronous invocations)."""

    def __init__(
        self, client: SageMakerClient, request_prefix: str, timeout: float, poll_interval: float
    ) -> None:
        self.client, self.request_prefix = client, request_prefix
        self.timeout, self.poll_interval = timeout, poll_interval

    def _invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        return self.client.invoke_async(
            body, request_prefix=self.request_prefix, timeout=self.timeout, poll_interval=self.poll_interval
        )

    def depth(self, input_uri: str, depth_output_uri: str, **options: Any) -> dict[str, Any]:
        return self._invoke(depth_body(input_uri, depth_output_uri, **options))

    def stereo(self, input_uri: str, output_uri: str, **options: Any) -> dict[str, Any]:
        mode = options.pop("mode", "anaglyph")
        return self._invoke(request_body(input_uri, output_uri, mode, **options))

    depth_location = staticmethod(default_depth_location)


class SegmentBackend(Protocol):
    """What ``convert_segments`` needs: ``HttpClient``, ``SageMakerClient.async_backend(...)`` or
    ``stereocrafter.long.LocalBackend`` (local files, one machine)."""

    def depth(self, source: Any, depth_output: str, **options: Any) -> dict[str, Any]: ...

    def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]: ...

    def depth_location(self, index: int, output: str) -> str: ...


# Options of a segment conversion that the depth task takes too (the rest are the stereo task's).
DEPTH_TASK_OPTIONS = ("preset", "seed")


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

    @property
    def ok(self) -> bool:
        return self.result is not None


@dataclass
class SegmentsResult:
    segments: list[SegmentOutcome]
    alignment: Alignment

    @property
    def failed(self) -> list[int]:
        """Indices of the segments without a stereo result (a plan has none: see ``depth``)."""
        return [s.index for s in self.segments if s.error is not None]

    def as_dict(self) -> dict[str, Any]:
        return {
            "failed": self.failed,
            "alignment": self.alignment.as_dict(),
            "segments": [
                {"index": s.index, "output": s.output, "depth_uri": s.depth_uri, "ok": s.ok, "error": s.error,
                 "error_code": s.error_code, "stage": s.stage, "attempts": s.attempts}
                for s in self.segments
            ],
        }  # fmt: skip


def retryable(err: BaseException) -> bool:
    """Worth another attempt: the service or the network failed, not the request (5xx, no answer)."""
    if isinstance(err, ConversionError):  # not 507: the same segment needs the same memory
        return err.status >= 500 and err.status != 507
    return isinstance(err, httpx.TransportError | TimeoutError | ConnectionError)


def _attempt(
    outcome: SegmentOutcome, stage: str, call: Callable[[], dict[str, Any]], retries: int, backoff: float,
    log: Callable[[str], None],
) -> dict[str, Any] | None:  # fmt: skip
    for attempt in range(1, retries + 2):
        outcome.attempts[stage] = attempt
        try:
            return call()
        except Exception as err:  # every failure is reported by index; none stops the others
            again = retryable(err) and attempt <= retries
            log(
                f"segment {outcome.index}: {stage} attempt {attempt} failed: {err}"
                + ("; retrying" if again else "")
            )
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
    mode: str = "anaglyph",
    max_concurrency: int = 4,
    retries: int = 2,
    backoff: float = 2.0,
    robust: bool = True,
    extrapolate: bool = True,
    plan_only: bool = False,
    depth_uris: Sequence[str] | None = None,
    log: Callable[[str], None] | None = None,
    **options: Any,
) -> SegmentsResult:
    """Convert a long video's segments ((input, output) pairs, in playback order) with one depth
    scale across them.

    1. Depth tasks, ``max_concurrency`` at a time: each segment's raw depth is stored (beside its
       output unless ``depth_uris`` says where) and its statistics and thumbnails come back.
    2. ``stereocrafter.align.align``: per boundary a robust affine fit (or a scene cut, not
       chained), maps chained from each shot's middle segment, one range per shot.
    3. Stereo tasks, ``max_concurrency`` at a time, each with its stored depth (no second depth
       pass), its map and its shot's range. Skipped with ``plan_only`` (``plan_segments``).

    ``robust`` and ``extrapolate``: see ``stereocrafter.align.align``. ``options`` go to the
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

    def depth(o: SegmentOutcome) -> None:
        o.depth = _attempt(o, "depth", lambda: backend.depth(o.source, o.depth_uri, **depth_options),
                           retries, backoff, say)  # fmt: skip

    with ThreadPoolExecutor(max_concurrency) as pool:
        list(pool.map(depth, outcomes))
    alignment = align([o.depth for o in outcomes], robust=robust, extrapolate=extrapolate)
    if plan_only:
        return SegmentsResult(outcomes, alignment)

    def stereo(o: SegmentOutcome) -> None:
        fields = {**options, "mode": mode, "depth_uri": o.depth_uri, **alignment.request_fields(o.index)}
        o.result = _attempt(
            o, "stereo", lambda: backend.stereo(o.source, o.output, **fields), retries, backoff, say
        )

    with ThreadPoolExecutor(max_concurrency) as pool:
        list(pool.map(stereo, [o for o in outcomes if o.depth is not None]))
    return SegmentsResult(outcomes, alignment)


def plan_segments(
    segments: Sequence[tuple[Any, str]], backend: SegmentBackend, **kwargs: Any
) -> SegmentsResult:
    """The depth tasks and the alignment only (no stereo task); ``result.alignment.table()`` shows
    the fits, cuts, maps and ranges ``convert_segments`` would use."""
    return convert_segments(segments, backend, plan_only=True, **kwargs)
