"""S3 in and out (boto3's transfer manager with retries); the only boto3 user outside containerize/.

Every call takes a parsed ``S3Location`` (or a URI it parses), and every failure becomes one of the
service's errors with the status a caller can act on:

- 400 when the caller is at fault (a missing output bucket, a key S3 refuses, an archived input),
  403 access denied, 404 input missing, 409 output exists (``overwrite=False``), 413 input too
  large, 502 S3 unreachable, failing or throttling after retries.

Time-outs are explicit (``client_config``): 3 s to connect, 15 s for any one socket read, 3
tries with standard retry back-off, so an S3 that accepts connections and never answers fails a
call in at most ``worst_case_call_s()`` (57 s) instead of botocore's default of six minutes, and
a job at its first S3 call (the preflight's HeadObject). A download whose body stops mid-way is
re-requested once (``DOWNLOAD_ATTEMPTS``): 2 x 15 s. A transfer that keeps delivering bytes,
however slowly, never hits the read time-out, which bounds a single wait, not the transfer.

Uploads go through ``upload_file``: a multipart upload that fails is aborted by the transfer
manager, so a failed job never leaves a partial object at the output key. With
``overwrite=False`` the final write carries ``If-None-Match: *`` (PutObject or
CompleteMultipartUpload), so an object that appears while the job runs is not replaced either.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig

from stereocrafter.echo import echo, get_logger
from stereocrafter.errors import (
    BadRequestError,
    InputNotFoundError,
    LimitExceededError,
    OutputExistsError,
    S3AccessDeniedError,
    S3UnavailableError,
    StereoCrafterError,
)
from stereocrafter.schemas import S3Location

logger = get_logger("bentoml.stereocrafter.storage")

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0  # per socket read, not per transfer: a trickling body keeps resetting it
MAX_ATTEMPTS = 3  # tries of one S3 request, the first included
DOWNLOAD_ATTEMPTS = 2  # GETs of one download when its body breaks off

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
_EXISTS = {"PreconditionFailed", "412"}
# S3's answers that mean the request named something S3 will not take: the caller's to fix.
_CALLER_FAULT = {
    "KeyTooLongError": "the object key is longer than S3 allows",
    "InvalidBucketName": "S3 says the bucket name is invalid",
    "InvalidURI": "S3 could not parse the object's URI",
    "InvalidObjectName": "S3 says the object name is invalid",
    "414": "the object key is too long for S3",
    "InvalidObjectState": "the object is in an archive storage class (restore it first)",
    "InvalidStorageClass": "the object's storage class cannot be read directly",
}
_CODE_IN_TEXT = re.compile(r"An error occurred \((?P<code>[A-Za-z0-9]+)\)")


def client_config(
    max_attempts: int = MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> botocore.config.Config:
    """Standard retry mode (exponential back-off with jitter on throttling, 5xx and time-outs) and
    explicit time-outs, so an endpoint that hangs fails in under a minute, not in six.

    ``total_max_attempts`` counts the first try; botocore's ``max_attempts`` key counts retries
    only (``max_attempts=5`` is six tries: 6 x 60 s reads made the 362 s seen before)."""
    return botocore.config.Config(
        retries={"total_max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )


def worst_case_call_s(
    max_attempts: int = MAX_ATTEMPTS,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    read_timeout: float = READ_TIMEOUT_S,
) -> float:
    """Longest one S3 call can take against an endpoint that never answers: every attempt waits
    for the connect and the read time-out, plus standard mode's back-off (at most 2**n s after
    attempt n, capped at 20 s)."""
    backoff = sum(min(20.0, 2.0**n) for n in range(max_attempts - 1))
    return max_attempts * (connect_timeout + read_timeout) + backoff


@dataclass(frozen=True)
class ObjectInfo:
    """What HeadObject says of an object; ``same_object`` tells one object under two names."""

    size: int
    etag: str
    last_modified: Any  # datetime
    version_id: str | None

    def same_object(self, other: ObjectInfo) -> bool:
        return (self.size, self.etag, self.last_modified, self.version_id) == (
            other.size,
            other.etag,
            other.last_modified,
            other.version_id,
        )


class S3Storage:
    """Download inputs and upload outputs by ``S3Location`` (or ``s3://bucket/key``)."""

    def __init__(
        self,
        client: Any = None,
        *,
        max_attempts: int = MAX_ATTEMPTS,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
        chunk_mib: int = 16,
    ) -> None:
        self.client = client or boto3.client(
            "s3", config=client_config(max_attempts, connect_timeout, read_timeout)
        )
        self.transfer = TransferConfig(
            multipart_threshold=chunk_mib * 2**20,
            multipart_chunksize=chunk_mib * 2**20,
            max_concurrency=8,
            # GETs in all when a body stops mid-way (each waits one read time-out); botocore's
            # own retries cover each request up to its headers.
            num_download_attempts=DOWNLOAD_ATTEMPTS,
        )
        # (bucket, key) pairs being written create-only: their final write gets If-None-Match: *.
        self._create_only: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        for operation in ("PutObject", "CompleteMultipartUpload"):
            self.client.meta.events.register(
                f"before-parameter-build.s3.{operation}",
                self._add_if_none_match,
                unique_id=f"stereocrafter-create-only-{operation}-{id(self)}",
            )

    def _add_if_none_match(self, params: dict[str, Any], **_: Any) -> None:
        with self._lock:
            if (params.get("Bucket"), params.get("Key")) in self._create_only:
                params["IfNoneMatch"] = "*"

    def head(self, location: S3Location | str) -> ObjectInfo:
        """HeadObject of an input: its size and identity (404/403/502 as the service's errors)."""
        loc = S3Location.parse(location)
        try:
            head = self.client.head_object(Bucket=loc.bucket, Key=loc.key)
        except Exception as err:
            raise _mapped(err, loc, "read") from err
        return _info(head)

    def size(self, location: S3Location | str) -> int:
        """Bytes of the object at ``location``."""
        return self.head(location).size

    def preflight(
        self, source: S3Location | str, target: S3Location | str, *, overwrite: bool = True
    ) -> ObjectInfo:
        """Everything that can be known before any work: returns the input's ``ObjectInfo``.

        1. The input exists and may be read (HeadObject: 404 / 403).
        2. The output is not the input under another name (an access-point alias, say): an
           existing output with the input's size, ETag, time and version is refused (400).
        3. With ``overwrite=False``, no object exists at the output yet (409).
        4. The output bucket exists and takes writes: a multipart upload is started at the output
           key and aborted at once. That needs only s3:PutObject (HeadBucket would need
           s3:ListBucket, which write-only output policies do not grant) and creates no object.
        """
        src, dst = S3Location.parse(source), S3Location.parse(target)
        info = self.head(src)
        existing = self._head_if_readable(dst)
        if existing is not None and existing.same_object(info):
            raise BadRequestError(
                f"the output {echo(dst.uri)} is the input object under another name; it would be overwritten"
            )
        if existing is not None and not overwrite:
            raise OutputExistsError(f"an object already exists at {echo(dst.uri)} and overwrite is false")
        self._probe_write(dst)
        return info

    def _head_if_readable(self, location: S3Location) -> ObjectInfo | None:
        """The output's HeadObject, or None when there is none or the service may not read it."""
        try:
            return _info(self.client.head_object(Bucket=location.bucket, Key=location.key))
        except botocore.exceptions.ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_KEY or code in _DENIED or code in _MISSING_BUCKET:
                return None  # a missing bucket is reported by the write probe, with its reason
            raise _mapped(err, location, "read") from err
        except Exception as err:
            raise _mapped(err, location, "read") from err

    def _probe_write(self, location: S3Location) -> None:
        try:
            upload = self.client.create_multipart_upload(Bucket=location.bucket, Key=location.key)
        except Exception as err:
            raise _mapped(err, location, "write") from err
        try:
            self.client.abort_multipart_upload(
                Bucket=location.bucket, Key=location.key, UploadId=upload["UploadId"]
            )
        except Exception as err:  # holds no data; an AbortIncompleteMultipartUpload rule removes it
            logger.warning("could not abort the write probe at %s: %s", echo(location.uri), err)

    def download(
        self, location: S3Location | str, path: str | os.PathLike[str], *, max_bytes: int | None = None
    ) -> int:
        """Fetch ``location`` to ``path``; refuses objects over ``max_bytes`` before transferring them."""
        loc = S3Location.parse(location)
        size = self.size(loc)
        if max_bytes is not None and size > max_bytes:
            raise LimitExceededError(f"the input is {size} bytes; the limit is {max_bytes} bytes")
        try:
            self.client.download_file(loc.bucket, loc.key, str(path), Config=self.transfer)
        except Exception as err:
            Path(path).unlink(missing_ok=True)
            raise _mapped(err, loc, "read") from err
        return size

    def upload(
        self,
        path: str | os.PathLike[str],
        location: S3Location | str,
        content_type: str = "video/mp4",
        *,
        overwrite: bool = True,
    ) -> None:
        """Put the finished local file at ``location`` (multipart above the chunk size, aborted on
        failure); with ``overwrite=False`` only if no object exists there (else 409)."""
        loc = S3Location.parse(location)
        pair = (loc.bucket, loc.key)
        if not overwrite:
            with self._lock:
                self._create_only.add(pair)
        try:
            self.client.upload_file(
                str(path), loc.bucket, loc.key, ExtraArgs={"ContentType": content_type}, Config=self.transfer
            )
        except Exception as err:
            raise _mapped(err, loc, "write") from err
        finally:
            with self._lock:
                self._create_only.discard(pair)


def _info(head: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        size=int(head["ContentLength"]),
        etag=str(head.get("ETag", "")),
        last_modified=head.get("LastModified"),
        version_id=head.get("VersionId"),
    )


def _error_code(err: Exception) -> str:
    if isinstance(err, botocore.exceptions.ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return "414" if status == 414 else code
    if isinstance(err, S3UploadFailedError):  # s3transfer wraps the ClientError's text
        match = _CODE_IN_TEXT.search(str(err))
        return match["code"] if match else ""
    return ""


def _mapped(err: Exception, location: S3Location, action: str) -> StereoCrafterError:
    """boto3/botocore failure -> the service's error for it (messages never carry credentials)."""
    if isinstance(err, StereoCrafterError):
        return err
    code, uri = _error_code(err), echo(location.uri)
    if code in _DENIED:
        return S3AccessDeniedError(f"access denied to {action} {uri}")
    if code in _MISSING_BUCKET:
        if action == "write":
            return BadRequestError(f"the output bucket of {uri} does not exist")
        return InputNotFoundError(f"the bucket of {uri} does not exist")
    if code in _MISSING_KEY and action == "read":
        return InputNotFoundError(f"no object at {uri}")
    if code in _EXISTS and action == "write":
        return OutputExistsError(f"an object appeared at {uri} while the job ran, and overwrite is false")
    if code in _CALLER_FAULT:
        return BadRequestError(f"cannot {action} {uri}: {_CALLER_FAULT[code]} ({code})")
    logger.warning("S3 %s of %s failed: %s: %s", action, uri, type(err).__name__, err)
    return S3UnavailableError(f"S3 failed to {action} {uri} ({code or type(err).__name__})")
