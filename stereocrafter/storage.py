"""S3 in and out (boto3's transfer manager with retries); the only boto3 user outside containerize/.

Every failure becomes one of the service's errors with the status a caller can act on:
403 access denied, 404 input missing, 413 input too large, 502 S3 unreachable or failing.
Uploads go through ``upload_file``: a multipart upload that fails is aborted by the transfer
manager, so a failed job never leaves a partial object at the output key.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig

from stereocrafter.errors import (
    BadRequestError,
    InputNotFoundError,
    LimitExceededError,
    S3AccessDeniedError,
    S3UnavailableError,
    StereoCrafterError,
)
from stereocrafter.schemas import split_s3_uri

logger = logging.getLogger("bentoml.stereocrafter.storage")

_DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_MISSING_BUCKET = {"NoSuchBucket"}


def client_config(max_attempts: int = 5) -> botocore.config.Config:
    """Standard retry mode (exponential backoff with jitter on throttling and 5xx), bounded
    timeouts so an unreachable endpoint fails in seconds, not minutes."""
    return botocore.config.Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )


class S3Storage:
    """Download inputs and upload outputs by ``s3://bucket/key`` URI."""

    def __init__(self, client: Any = None, *, max_attempts: int = 5, chunk_mib: int = 16) -> None:
        self.client = client or boto3.client("s3", config=client_config(max_attempts))
        self.transfer = TransferConfig(
            multipart_threshold=chunk_mib * 2**20, multipart_chunksize=chunk_mib * 2**20, max_concurrency=8
        )

    def size(self, uri: str) -> int:
        """Bytes of the object at ``uri``."""
        bucket, key = split_s3_uri(uri)
        try:
            head = self.client.head_object(Bucket=bucket, Key=key)
        except Exception as err:
            raise _mapped(err, uri, "read") from err
        return int(head["ContentLength"])

    def download(self, uri: str, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> int:
        """Fetch ``uri`` to ``path``; refuses objects over ``max_bytes`` before transferring them."""
        size = self.size(uri)
        if max_bytes is not None and size > max_bytes:
            raise LimitExceededError(f"the input is {size} bytes; the limit is {max_bytes} bytes")
        bucket, key = split_s3_uri(uri)
        try:
            self.client.download_file(bucket, key, str(path), Config=self.transfer)
        except Exception as err:
            Path(path).unlink(missing_ok=True)
            raise _mapped(err, uri, "read") from err
        return size

    def upload(self, path: str | os.PathLike[str], uri: str, content_type: str = "video/mp4") -> None:
        """Put the finished local file at ``uri`` (multipart above the chunk size, aborted on failure)."""
        bucket, key = split_s3_uri(uri)
        try:
            self.client.upload_file(
                str(path), bucket, key, ExtraArgs={"ContentType": content_type}, Config=self.transfer
            )
        except Exception as err:
            raise _mapped(err, uri, "write") from err


def _mapped(err: Exception, uri: str, action: str) -> StereoCrafterError:
    """boto3/botocore failure -> the service's error for it (messages never carry credentials)."""
    if isinstance(err, StereoCrafterError):
        return err
    code = ""
    if isinstance(err, botocore.exceptions.ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
    elif isinstance(err, S3UploadFailedError):
        text = str(err)
        code = next((c for c in (*_DENIED, *_MISSING_BUCKET) if c in text), "")
    if code in _DENIED:
        return S3AccessDeniedError(f"access denied to {action} {uri}")
    if code in _MISSING_BUCKET:
        if action == "write":
            return BadRequestError(f"the output bucket of {uri} does not exist")
        return InputNotFoundError(f"the bucket of {uri} does not exist")
    if code in _MISSING_KEY and action == "read":
        return InputNotFoundError(f"no object at {uri}")
    logger.warning("S3 %s of %s failed: %s: %s", action, uri, type(err).__name__, err)
    return S3UnavailableError(f"S3 failed to {action} {uri} ({code or type(err).__name__})")
