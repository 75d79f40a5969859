"""Where a job's objects are: ``S3Location(bucket, key)``, parsed once from ``s3://bucket/key``.

A leaf of the foundation (no torch, no boto3, no pydantic), so the request schema, the S3 storage and
the client all parse a URI with the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from stereocrafter.echo import echo

__all__ = ["MAX_KEY_BYTES", "S3Location", "split_s3_uri"]

MAX_KEY_BYTES = 1024  # S3's limit on an object key, UTF-8 encoded
# Bucket names as S3 creates them today: 3-63 of [a-z0-9.-], starting and ending alphanumeric.
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]")
_URI = re.compile(r"s3://(?P<bucket>[^/]*)/(?P<key>.*)", re.DOTALL)
_IP_LIKE = re.compile(r"\d{1,3}(\.\d{1,3}){3}")
# C0 controls, DEL and C1 controls: never part of a key anyone means to name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class S3Location:
    """One S3 object: ``bucket`` and ``key`` exactly as S3 sees them (``uri`` is the canonical text)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return self.uri

    @classmethod
    def parse(cls, uri: object) -> S3Location:
        """``"s3://bucket/key"`` -> ``S3Location``; ``ValueError`` naming the rule a value breaks.

        Refused, besides anything that is not ``s3://bucket/key``: control characters anywhere
        (U+0000-U+001F, U+007F-U+009F), invalid bucket names, keys over 1024 UTF-8 bytes or not
        encodable as UTF-8, keys ending in ``/`` (a prefix, not an object), and keys with ``.`` or
        ``..`` segments (a path-normalising hop could resolve ``a/../b`` to another object's key).
        The whole value must match: nothing, not even a newline, may follow the key.
        """
        if isinstance(uri, S3Location):
            return uri
        if not isinstance(uri, str):
            raise ValueError(f"must be a string s3://bucket/key, got {type(uri).__name__}")
        control = _CONTROL.search(uri)
        if control is not None:
            char = ord(control.group())
            raise ValueError(
                f"contains the control character U+{char:04X} at position {control.start()}: {echo(uri)}"
            )
        match = _URI.fullmatch(uri)
        if match is None:
            raise ValueError(f"is not an s3://bucket/key URI: {echo(uri)}")
        bucket, key = match["bucket"], match["key"]
        if not _BUCKET.fullmatch(bucket) or ".." in bucket or _IP_LIKE.fullmatch(bucket):
            raise ValueError(
                f"has an invalid bucket name {echo(bucket)} (3-63 characters of a-z, 0-9, '.', '-', "
                "starting and ending with a letter or digit)"
            )
        if not key:
            raise ValueError(f"has no object key: {echo(uri)}")
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"has a key that is not valid Unicode text: {echo(uri)}") from None
        if size > MAX_KEY_BYTES:
            raise ValueError(f"has a key of {size} bytes; S3 allows {MAX_KEY_BYTES}: {echo(uri)}")
        if key.endswith("/"):
            raise ValueError(f"names a prefix (ends with '/'), not an object: {echo(uri)}")
        if any(segment in (".", "..") for segment in key.split("/")):
            raise ValueError(f"has a '.' or '..' path segment in its key: {echo(uri)}")
        return cls(bucket, key)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key) by ``S3Location.parse``; ``ValueError`` for anything else."""
    location = S3Location.parse(uri)
    return location.bucket, location.key
