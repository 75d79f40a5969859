"""Error types of the converter, each with the meaning a caller can act on.

Every error carries a stable machine-readable ``code`` and the HTTP ``status`` the service answers
with, so the service layer maps errors to responses without a table of its own. This module imports
nothing heavy (no torch, no PyAV): the service and the client import it freely.
"""

from __future__ import annotations


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
            counts = ", ".join(f"{n} in {repo}" for repo, n in repos.items())
            detail = f"{len(missing)} components ({counts}); `stereocrafter doctor` lists the files"
        super().__init__(f"model weights missing under {weights_dir}: {detail}")
        self.missing = missing
        self.weights_dir = weights_dir


class BadRequestError(StereoCrafterError):
    """The request itself is wrong: malformed JSON, unknown fields, a bad value or URI."""

    code = "bad_request"
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
