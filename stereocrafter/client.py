"""Python client for callers (the video-worker): one call per segment, on either backend.

- ``HttpClient``: the service over HTTP (a GPU EC2 host, or ``bentoml serve`` locally).
- ``SageMakerClient``: a SageMaker endpoint through ``sagemaker-runtime``: real-time
  ``invoke_endpoint`` (``convert``) or asynchronous ``invoke_endpoint_async`` (``convert_async``,
  which puts the request JSON in S3 and waits for SageMaker's output object).

``convert_segments`` (from ``stereocrafter.long.segments``, importable from here) converts a long video's
segments, in parallel, with one depth scale from the first frame to the last (depth tasks,
alignment by ``stereocrafter.long.align``, then stereo tasks that reuse the stored depth);
``plan_segments`` stops after the alignment, for debugging. This module imports no torch: the
video-worker can install the client alone.

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
from typing import Any

import httpx

from stereocrafter.bounds import DEFAULT_MODE
from stereocrafter.errors import (
    AccessDenied,
    BadRequest,
    ConversionError,
    DeadlineExceeded,
    GpuFailed,
    InputNotFound,
    InsufficientGpuMemory,
    InvalidDepth,
    InvalidVideo,
    OutputExists,
    PresetUnavailable,
    RequestTooLarge,
    SegmentTooLarge,
    ServiceError,
    ServiceNotReady,
    StorageUnavailable,
    error_from,
    status_of,
)
from stereocrafter.locations import split_s3_uri
from stereocrafter.long.segments import (
    SegmentBackend,
    SegmentOutcome,
    SegmentsResult,
    convert_segments,
    plan_segments,
)
from stereocrafter.long.segments import retryable as _retryable
from stereocrafter.long.tasks import check_task_fields

# The names callers import from here: the backends, the typed errors (declared in ``errors``, one
# table with the service's), and the segment orchestration (``segments``).
__all__ = [
    "AccessDenied",
    "BadRequest",
    "ConversionError",
    "DeadlineExceeded",
    "GpuFailed",
    "HttpClient",
    "InputNotFound",
    "InsufficientGpuMemory",
    "InvalidDepth",
    "InvalidVideo",
    "OutputExists",
    "PresetUnavailable",
    "RequestTooLarge",
    "SageMakerAsyncBackend",
    "SageMakerClient",
    "SegmentBackend",
    "SegmentOutcome",
    "SegmentTooLarge",
    "SegmentsResult",
    "ServiceError",
    "ServiceNotReady",
    "StorageUnavailable",
    "convert_segments",
    "error_from",
    "plan_segments",
    "retryable",
]

# What a failed call may raise that is worth another attempt besides a 5xx answer (``segments``).
TRANSIENT: tuple[type[BaseException], ...] = (httpx.TransportError, TimeoutError, ConnectionError)


def retryable(err: BaseException) -> bool:
    """Worth another attempt: a 5xx other than 507, or no answer at all (httpx's transport errors
    included): ``segments.retryable`` with this client's ``TRANSIENT``."""
    return _retryable(err, TRANSIENT)


def request_body(input_uri: str, output_uri: str, mode: str = DEFAULT_MODE, **options: Any) -> dict[str, Any]:
    """The stereo task's body; ``ValueError`` for a field only the depth task takes (``long.tasks``,
    the table the service's schema checks too)."""
    check_task_fields("stereo", options)
    return {"s3_input_uri": input_uri, "s3_output_uri": output_uri, "mode": mode, **options}


def depth_body(input_uri: str, depth_output_uri: str, **options: Any) -> dict[str, Any]:
    """The depth task's body; ``ValueError`` for a field only the stereo task takes."""
    check_task_fields("depth", options)
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
        self, input_uri: str, output_uri: str, mode: str = DEFAULT_MODE, **options: Any
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
    transient = TRANSIENT  # what ``convert_segments`` retries besides a 5xx

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
        self, input_uri: str, output_uri: str, mode: str = DEFAULT_MODE, **options: Any
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
        mode: str = DEFAULT_MODE,
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
    from the body's error code, by the service's own table, ``errors.status_of``)."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = {}
    code = str(data.get("error", "")) if isinstance(data, dict) else ""
    return error_from(status_of(code) or 500, body)


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
        mode = options.pop("mode", DEFAULT_MODE)
        return self._invoke(request_body(input_uri, output_uri, mode, **options))

    depth_location = staticmethod(default_depth_location)
