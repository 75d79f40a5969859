"""Error types of the converter, each with the meaning a caller can act on.

Every error carries a stable machine-readable ``code`` and the HTTP ``status`` the service answers
with, so the service layer maps errors to responses without a table of its own. The caller's side
(``ConversionError`` and its subclasses, re-exported by ``stereocrafter.client``) is declared here
too, from the same classes, so the code -> class -> status table exists once. This module imports
nothing heavy (no torch, no PyAV): the service and the client import it freely.
"""

from __future__ import annotations

import json
from typing import Any


class StereoCrafterError(Exception):
    """Base class: something the caller can be told about in one sentence."""

    code = "internal_error"
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class VideoDecodeError(StereoCrafterError):
    """The input is not a decodable video: not a media file, no video stream, no frames, or
    truncated/corrupt data. The message says which, and where."""

    code = "invalid_video"
    status = 422


class InvalidDepthError(StereoCrafterError):
    """A stored depth (``depth_uri``) is not a depth file this service wrote, or is damaged."""

    code = "invalid_depth"
    status = 422


class DepthMismatchError(StereoCrafterError):
    """A stored depth belongs to another segment: its frame count or source size differ."""

    code = "depth_mismatch"
    status = 422


class VideoEncodeError(StereoCrafterError):
    """The output video could not be written (encoder or muxer failure). No file is left at the
    destination path."""

    code = "encode_failed"
    status = 500


class EncoderUnavailableError(StereoCrafterError):
    """``STEREOCRAFTER_ENCODER`` (or ``--encoder``) names an NVENC encoder this machine cannot open
    (no NVIDIA driver, or a GPU without NVENC: A100, H100, H200). ``auto`` never raises this: it
    falls back to libx264. Like a missing device, the instance cannot work: 503."""

    code = "encoder_unavailable"
    status = 503


class StitchError(StereoCrafterError):
    """``convert-long`` converted every segment but could not join them; the message names the
    folder where the converted segments were kept."""

    code = "stitch_failed"
    status = 500


class WeightsMissingError(StereoCrafterError):
    """Model weights are not (completely) present under the weights directory. ``missing`` lists
    the absent paths relative to it; the service is not ready until they exist."""

    code = "weights_missing"
    status = 503

    def __init__(self, missing: list[str], weights_dir: str) -> None:
        # Short: one or two components by name, else a count per repo (the full list is in
        # ``missing``, the service log and ``stereocrafter doctor``).
        if len(missing) <= 2:
            detail = "; ".join(missing)
        else:
            repos: dict[str, int] = {}
            for item in missing:
                repo = "/".join(item.split("/")[:2])
                repos[repo] = repos.get(repo, 0) + 1
            # beyond three repos their names without the owner: the line stays short
            names = {repo: repo.split("/")[-1] if len(repos) > 3 else repo for repo in repos}
            counts = ", ".join(f"{n} in {names[repo]}" for repo, n in repos.items())
            detail = f"{len(missing)} components ({counts}); `stereocrafter doctor` lists the files"
        super().__init__(f"model weights missing under {weights_dir}: {detail}")
        self.missing = missing
        self.weights_dir = weights_dir


class WeightsCorruptError(StereoCrafterError):
    """A weight file is there but is not what its loader expects (truncated, another model, a
    missing or an unknown key): the service cannot work until it is replaced; ``/ping`` says which."""

    code = "weights_corrupt"
    status = 503


class PresetUnavailableError(StereoCrafterError):
    """The preset's model is missing or corrupt here, while others work: the message says what to do."""

    code = "preset_unavailable"
    status = 503


class BadRequestError(StereoCrafterError):
    """The request itself is wrong: malformed JSON, unknown fields, a bad value or URI."""

    code = "bad_request"
    status = 400


class PresetNotServedError(BadRequestError):
    """The request names a preset this endpoint does not serve (``STEREOCRAFTER_PRESETS``): its
    models were not loaded. The message names the presets served."""

    code = "preset_not_served"
    status = 400


class S3AccessDeniedError(StereoCrafterError):
    """S3 refused the service access to the input or output location."""

    code = "s3_access_denied"
    status = 403


class InputNotFoundError(StereoCrafterError):
    """The input object (or its bucket) does not exist."""

    code = "input_not_found"
    status = 404


class LimitExceededError(StereoCrafterError):
    """The segment is larger than the configured limits (bytes, frames or resolution)."""

    code = "segment_too_large"
    status = 413


class S3UnavailableError(StereoCrafterError):
    """S3 could not be reached or kept failing after retries."""

    code = "s3_unavailable"
    status = 502


class NotReadyError(StereoCrafterError):
    """The models are not loaded (still downloading/loading, or loading failed)."""

    code = "not_ready"
    status = 503


class OutputExistsError(StereoCrafterError):
    """The request said ``overwrite: false`` and an object already exists at the output URI (or
    appeared there while the job ran). Nothing was written."""

    code = "output_exists"
    status = 409


class DeadlineExceededError(StereoCrafterError):
    """The job passed its deadline (``deadline_s`` or ``STEREOCRAFTER_JOB_TIMEOUT_S``, counted from
    the request's arrival, so the wait in the queue counts); it was stopped and nothing written."""

    code = "deadline_exceeded"
    status = 504


class ServiceStoppingError(StereoCrafterError):
    """The service is shutting down (SIGTERM); the job was stopped and nothing written: retry."""

    code = "shutting_down"
    status = 503


class InsufficientGpuMemoryError(StereoCrafterError):
    """The GPU ran out of memory on this job; the memory was freed and the service stays up.
    A smaller ``tile_num``-bound job or the ``fast`` preset needs less."""

    code = "insufficient_gpu_memory"
    status = 507


class GpuFailedError(StereoCrafterError):
    """A CUDA error that poisons the device's context (illegal address, ECC, launch failure): this
    job failed, the service marks itself failed (``/ping`` 503) so that it is replaced."""

    code = "gpu_failed"
    status = 503


class NonFiniteOutputError(StereoCrafterError):
    """The VAE decoded non-finite values (inf/NaN) even after the retry in float32."""

    code = "non_finite_output"
    status = 500


class DeviceUnavailableError(StereoCrafterError):
    """CUDA was asked for (``STEREOCRAFTER_DEVICE=cuda``) but torch sees no CUDA device."""

    code = "device_unavailable"
    status = 503


class BodyTooLargeError(StereoCrafterError):
    """The request body is over the service's limit; it was refused before being read whole."""

    code = "body_too_large"
    status = 413


class RouteNotFoundError(StereoCrafterError):
    """No such route: the service serves ``/ping``, ``/invocations`` and ``/metrics`` only."""

    code = "not_found"
    status = 404


class MethodNotAllowedError(StereoCrafterError):
    """The route exists but not for this HTTP method."""

    code = "method_not_allowed"
    status = 405


# What a caller sees (``stereocrafter.client``, ``stereocrafter.long.segments``): one exception type per
# meaning a caller acts on, each standing for the service errors above that share that meaning.
# The code -> class -> status table is built from these declarations, so a new service error that
# no caller type stands for fails ``tests/test_client.py``, not a caller in production.


class ConversionError(Exception):
    """The service refused or failed the conversion: ``status`` (HTTP), ``code`` (the service's
    error code), ``message`` and ``request_id`` (the service log's key); ``gpu_seconds`` and
    ``cost``: what the job held of its GPU before it failed (None: it never took one)."""

    stands_for: tuple[type[StereoCrafterError], ...] = ()
    gpu_seconds: float | None = None
    cost: float | None = None

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


class BadRequest(ConversionError):
    """400: malformed request, bad mode or URI (or a route or method the service does not serve)."""

    stands_for: tuple[type[StereoCrafterError], ...] = (
        BadRequestError, PresetNotServedError, RouteNotFoundError, MethodNotAllowedError,
    )  # fmt: skip


class AccessDenied(ConversionError):
    """403: the service may not read the input or write the output."""

    stands_for = (S3AccessDeniedError,)


class InputNotFound(ConversionError):
    """404: no input object."""

    stands_for = (InputNotFoundError,)


class SegmentTooLarge(ConversionError):
    """413: over the configured bytes, frames or resolution."""

    stands_for = (LimitExceededError,)


class RequestTooLarge(BadRequest):
    """413 body_too_large: the request body itself is over the service's limit (64 KiB)."""

    stands_for = (BodyTooLargeError,)


class InvalidDepth(ConversionError):
    """422 invalid_depth / depth_mismatch: a ``depth_uri`` that is damaged or from another segment."""

    stands_for = (InvalidDepthError, DepthMismatchError)


class OutputExists(ConversionError):
    """409: ``overwrite=False`` and an object is already at the output URI (nothing was written)."""

    stands_for = (OutputExistsError,)


class InvalidVideo(ConversionError):
    """422: the input is not a decodable video."""

    stands_for = (VideoDecodeError,)


class StorageUnavailable(ConversionError):
    """502: S3 failed or could not be reached."""

    stands_for = (S3UnavailableError,)


class ServiceNotReady(ConversionError):
    """503: models still loading, failed, no weights configured or a weight file unusable, no GPU,
    a named encoder this GPU lacks, or the service is stopping: retry later or elsewhere."""

    stands_for: tuple[type[StereoCrafterError], ...] = (
        NotReadyError, WeightsMissingError, WeightsCorruptError, ServiceStoppingError,
        DeviceUnavailableError, EncoderUnavailableError,
    )  # fmt: skip


class PresetUnavailable(ServiceNotReady):
    """503 preset_unavailable: this preset's model is missing or corrupt here; other presets work."""

    stands_for = (PresetUnavailableError,)


class GpuFailed(ServiceNotReady):
    """503 gpu_failed: the instance's GPU failed during this job; it marked itself unhealthy."""

    stands_for = (GpuFailedError,)


class DeadlineExceeded(ConversionError):
    """504 deadline_exceeded: the job passed its deadline and was stopped; nothing was written."""

    stands_for = (DeadlineExceededError,)


class InsufficientGpuMemory(ConversionError):
    """507 insufficient_gpu_memory: the segment needs more GPU memory than the instance has; try
    the fast preset, a smaller tile_num, or a shorter or smaller segment."""

    stands_for = (InsufficientGpuMemoryError,)


class ServiceError(ConversionError):
    """500 or any other unexpected status."""

    stands_for = (StereoCrafterError, VideoEncodeError, StitchError, NonFiniteOutputError)


def _subclasses(cls: type[Any]) -> list[type[Any]]:
    found: list[type[Any]] = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


# Every error the service answers with, by code; and the caller's type for each code.
_SERVED: list[type[StereoCrafterError]] = [StereoCrafterError, *_subclasses(StereoCrafterError)]
_CALLERS: list[type[ConversionError]] = _subclasses(ConversionError)
SERVICE_ERRORS: dict[str, type[StereoCrafterError]] = {cls.code: cls for cls in _SERVED}
CALLER_ERRORS: dict[str, type[ConversionError]] = {
    served.code: caller for caller in _CALLERS for served in caller.stands_for
}
# An answer without a code of the service's (a gateway's, a proxy's) is typed by its status alone.
_BY_STATUS: dict[int, type[ConversionError]] = {
    400: BadRequest, 403: AccessDenied, 404: InputNotFound, 409: OutputExists, 413: SegmentTooLarge,
    422: InvalidVideo, 502: StorageUnavailable, 503: ServiceNotReady, 507: InsufficientGpuMemory,
}  # fmt: skip


def status_of(code: str) -> int | None:
    """The HTTP status the service answers ``code`` with (None: not one of its codes)."""
    served = SERVICE_ERRORS.get(code)
    return served.status if served is not None else None


def error_from(status: int, body: bytes | str) -> ConversionError:
    """The caller's typed error for a non-200 answer (the body is the service's JSON error, or
    anything): by the service's code where it has one, else by the status."""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
        data = None
    if not isinstance(data, dict):
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
        data = {"error": "unexpected_response", "message": text[:500]}
    cls = CALLER_ERRORS.get(str(data.get("error"))) or _BY_STATUS.get(status, ServiceError)
    err = cls(status, str(data.get("error", "")), str(data.get("message", "")), data.get("request_id"))
    for name in ("gpu_seconds", "cost"):  # what a job that failed on a GPU held before it failed
        value = data.get(name)
        setattr(err, name, float(value) if isinstance(value, int | float) else None)
    return err
