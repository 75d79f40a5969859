"""S3 in and out for the service's jobs (boto3's transfer manager with retries).

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

Every call takes an optional ``stop`` (a job's ``guard.Stop``, its ``Deadline``): the call then runs in a
daemon thread while the job's thread checks the deadline and SIGTERM every 0.25 s
(``guard.call_checked``), so a read that hangs for its whole time-out cannot hold the job, and a
stop raises at once. A transfer that is stopped is cancelled in the transfer manager (its
threads stop at their next chunk, and a multipart upload is aborted by the manager's failure
clean-up); the transfer manager's threads are daemon threads (``DaemonThreads``), so a thread
still blocked in a socket read never holds the process at exit.

Uploads are always multipart (``upload_config``: one part for a small file), so an object
appears only with the final CompleteMultipartUpload, which a cancelled transfer never sends: a
failed or stopped job never leaves a whole or partial object at the output key. With
``overwrite=False`` that final write carries ``If-None-Match: *``, so an object that appears
while the job runs is not replaced either.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from s3transfer.manager import TransferManager

from stereocrafter.echo import echo, get_logger
from stereocrafter.errors import (
    BadRequestError,
    LimitExceededError,
    OutputExistsError,
)
from stereocrafter.guard import Stop, call_checked
from stereocrafter.locations import S3Location
from stereocrafter.serving.s3errors import DENIED, MISSING_BUCKET, MISSING_KEY, mapped_error
from stereocrafter.serving.transfers import DaemonThreads, KnownObject, finish_transfer

logger = get_logger("bentoml.stereocrafter.serving.storage")

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 15.0  # per socket read, not per transfer: a trickling body keeps resetting it
MAX_ATTEMPTS = 3  # tries of one S3 request, the first included
DOWNLOAD_ATTEMPTS = 2  # GETs of one download when its body breaks off


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
    metadata: dict[str, str] = field(default_factory=dict)  # the object's user metadata (x-amz-meta-*)

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
        # Uploads: multipart from the first byte, so the object exists only once the final
        # CompleteMultipartUpload succeeds (a stopped upload is aborted, never half-visible).
        self.upload_config = TransferConfig(
            multipart_threshold=1, multipart_chunksize=chunk_mib * 2**20, max_concurrency=8
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

    def _call(self, stop: Stop | None, call: Callable[[], Any], location: S3Location, action: str) -> Any:
        """One S3 request, in a daemon thread while ``stop.check()`` runs (``guard.call_checked``); its
        failure raised as the service's error (``s3errors.mapped_error``), what the check raises unchanged."""

        def work() -> Any:
            try:
                return call()
            except Exception as err:
                raise mapped_error(err, location, action) from err

        return call_checked(work, stop, name=f"s3-{action}")

    def head(self, location: S3Location | str, *, stop: Stop | None = None) -> ObjectInfo:
        """HeadObject of an input: its size and identity (404/403/502 as the service's errors)."""
        loc = S3Location.parse(location)
        return _info(
            self._call(stop, lambda: self.client.head_object(Bucket=loc.bucket, Key=loc.key), loc, "read")
        )

    def size(self, location: S3Location | str, *, stop: Stop | None = None) -> int:
        """Bytes of the object at ``location``."""
        return self.head(location, stop=stop).size

    def preflight(
        self,
        source: S3Location | str,
        target: S3Location | str,
        *,
        overwrite: bool = True,
        also: tuple[S3Location, ...] = (),
        stop: Stop | None = None,
    ) -> ObjectInfo:
        """Everything that can be known before any work: returns the input's ``ObjectInfo``.

        1. The input exists and may be read (HeadObject: 404 / 403).
        2. The output is not the input under another name (an access-point alias, say): an
           existing output with the input's size, ETag, time and version is refused (400).
        3. With ``overwrite=False``, no object exists at the output yet (409).
        4. The output bucket exists and takes writes: a multipart upload is started at the output
           key and aborted at once. That needs only s3:PutObject (HeadBucket would need
           s3:ListBucket, which write-only output policies do not grant) and creates no object.

        ``also``: the other objects the job will write (its report beside the video); with
        ``overwrite=False`` none of them may exist either (409 before any work).
        """
        src, dst = S3Location.parse(source), S3Location.parse(target)
        info = self.head(src, stop=stop)
        for location in (dst, *also):
            existing = self.head_if_readable(location, stop)
            if existing is not None and existing.same_object(info):
                raise BadRequestError(
                    f"the output {echo(location.uri)} is the input object under another name; "
                    "it would be overwritten"
                )
            if existing is not None and not overwrite:
                raise OutputExistsError(
                    f"an object already exists at {echo(location.uri)} and overwrite is false"
                )
        self._probe_write(dst, stop)
        return info

    def head_if_readable(self, location: S3Location | str, stop: Stop | None = None) -> ObjectInfo | None:
        """The output's HeadObject, or None when there is none or the service may not read it."""
        location = S3Location.parse(location)

        def head() -> ObjectInfo | None:
            try:
                return _info(self.client.head_object(Bucket=location.bucket, Key=location.key))
            except botocore.exceptions.ClientError as err:
                code = str(err.response.get("Error", {}).get("Code", ""))
                if code in MISSING_KEY or code in DENIED or code in MISSING_BUCKET:
                    return None  # a missing bucket is reported by the write probe, with its reason
                raise

        result: ObjectInfo | None = self._call(stop, head, location, "read")
        return result

    def _probe_write(self, location: S3Location, stop: Stop | None = None) -> None:
        bucket, key = location.bucket, location.key

        def create() -> Any:
            return self.client.create_multipart_upload(Bucket=bucket, Key=key)

        upload_id = self._call(stop, create, location, "write")["UploadId"]

        def abort() -> None:
            try:
                self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            except Exception as err:  # holds no data; an AbortIncompleteMultipartUpload rule removes it
                logger.warning("could not abort the write probe at %s: %s", echo(location.uri), err)

        self._call(stop, abort, location, "write")

    def download(
        self,
        location: S3Location | str,
        path: str | os.PathLike[str],
        *,
        max_bytes: int | None = None,
        stop: Stop | None = None,
    ) -> int:
        """Fetch ``location`` to ``path``; refuses objects over ``max_bytes`` before transferring
        them. Nothing is left at ``path`` when it fails or is stopped."""
        loc = S3Location.parse(location)
        info = self.head(loc, stop=stop)
        if max_bytes is not None and info.size > max_bytes:
            raise LimitExceededError(f"the input is {info.size} bytes; the limit is {max_bytes} bytes")
        if stop is not None:
            stop.check()  # before the transfer starts: once started, a stop cancels it
        # Into a file opened here, not one the transfer manager names and renames: a stopped
        # download, still writing in its thread, never adds an entry to the job's folder while
        # that folder is removed; the file is closed when the transfer ends, whenever that is.
        target = Path(path).open("wb")  # noqa: SIM115 (closed by the transfer, or below)
        manager = TransferManager(self.client, self.transfer, executor_cls=DaemonThreads)
        future = manager.download(
            loc.bucket, loc.key, target, subscribers=[KnownObject(info.size, info.etag, target)]
        )
        try:
            finish_transfer(manager, future, stop, "s3-download", lambda err: mapped_error(err, loc, "read"))
        except BaseException:
            Path(path).unlink(missing_ok=True)
            raise
        target.close()  # flushed before anyone reads it (the subscriber's close may still be queued)
        return info.size

    def upload(
        self,
        path: str | os.PathLike[str],
        location: S3Location | str,
        content_type: str = "video/mp4",
        *,
        overwrite: bool = True,
        stop: Stop | None = None,
        metadata: dict[str, str] | None = None,
    ) -> None:
        """Put the finished local file at ``location`` (multipart, aborted on failure or when
        ``stop`` stops it); with ``overwrite=False`` only if no object exists there (else 409).
        ``metadata``: the object's user metadata, written with it in the same request."""
        loc = S3Location.parse(location)
        if stop is not None:
            stop.check()  # before the transfer starts: once started, a stop cancels it
        pair = (loc.bucket, loc.key)
        if not overwrite:
            with self._lock:
                self._create_only.add(pair)
        manager = TransferManager(self.client, self.upload_config, executor_cls=DaemonThreads)
        try:
            extra: dict[str, Any] = {"ContentType": content_type}
            if metadata:
                extra["Metadata"] = dict(metadata)
            future = manager.upload(str(path), loc.bucket, loc.key, extra_args=extra)
            finish_transfer(manager, future, stop, "s3-upload", lambda err: mapped_error(err, loc, "write"))
        finally:
            with self._lock:
                self._create_only.discard(pair)


def _info(head: dict[str, Any]) -> ObjectInfo:
    return ObjectInfo(
        size=int(head["ContentLength"]),
        etag=str(head.get("ETag", "")),
        last_modified=head.get("LastModified"),
        version_id=head.get("VersionId"),
        metadata={str(k).lower(): str(v) for k, v in (head.get("Metadata") or {}).items()},
    )
