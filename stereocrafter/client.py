"""Python client for callers (the video-worker): one call per segment, on either backend.

- ``HttpClient``: the service over HTTP (a GPU EC2 host, or ``bentoml serve`` locally).
- ``SageMakerClient``: a SageMaker endpoint through ``sagemaker-runtime``: real-time
  ``invoke_endpoint`` (``convert``) or asynchronous ``invoke_endpoint_async`` (``convert_async``,
  which puts the request JSON in S3 and waits for SageMaker's output object).

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


class OutputExists(ConversionError):
    """409: ``overwrite=False`` and an object is already at the output URI (nothing was written)."""


class InvalidVideo(ConversionError):
    """422: the input is not a decodable video."""


class StorageUnavailable(ConversionError):
    """502: S3 failed or could not be reached."""


class ServiceNotReady(ConversionError):
    """503: models still loading, failed, or no weights configured: retry later or elsewhere."""


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
}

# Codes that share a status with another meaning.
_BY_CODE: dict[str, type[ConversionError]] = {"body_too_large": RequestTooLarge}


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


class HttpClient:
    """``HttpClient("http://host:8080").convert("s3://in/a.mp4", "s3://out/a.mp4", mode="sbs")``."""

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
        body = request_body(input_uri, output_uri, mode, **options)
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
        bucket, prefix = split_s3_uri(request_prefix.rstrip("/") + "/x")
        key = f"{prefix[:-1]}{uuid.uuid4().hex}.json"
        body = json.dumps(request_body(input_uri, output_uri, mode, **options)).encode()
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
