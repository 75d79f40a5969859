"""boto3 and botocore failures as the service's errors, by S3's error code: 400 when the caller is at
fault (a missing output bucket, a key S3 refuses, an archived input), 403 access denied, 404 input
missing, 409 output exists, 502 S3 unreachable, failing or throttling after retries. Messages name
the object, bounded (``echo``), and never carry credentials."""

from __future__ import annotations

import re

import botocore.exceptions
from boto3.exceptions import S3UploadFailedError

from stereocrafter.echo import echo, get_logger
from stereocrafter.errors import (
    BadRequestError,
    InputNotFoundError,
    OutputExistsError,
    S3AccessDeniedError,
    S3UnavailableError,
    StereoCrafterError,
)
from stereocrafter.locations import S3Location

logger = get_logger("bentoml.stereocrafter.serving.storage")

DENIED = {
    "AccessDenied",
    "403",
    "Forbidden",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
}
MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
MISSING_BUCKET = {"NoSuchBucket"}
EXISTS = {"PreconditionFailed", "412"}
# S3's answers that mean the request named something S3 will not take: the caller's to fix.
CALLER_FAULT = {
    "KeyTooLongError": "the object key is longer than S3 allows",
    "InvalidBucketName": "S3 says the bucket name is invalid",
    "InvalidURI": "S3 could not parse the object's URI",
    "InvalidObjectName": "S3 says the object name is invalid",
    "414": "the object key is too long for S3",
    "InvalidObjectState": "the object is in an archive storage class (restore it first)",
    "InvalidStorageClass": "the object's storage class cannot be read directly",
}
_CODE_IN_TEXT = re.compile(r"An error occurred \((?P<code>[A-Za-z0-9]+)\)")


def error_code(err: Exception) -> str:
    if isinstance(err, botocore.exceptions.ClientError):
        code = str(err.response.get("Error", {}).get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return "414" if status == 414 else code
    if isinstance(err, S3UploadFailedError):  # s3transfer wraps the ClientError's text
        match = _CODE_IN_TEXT.search(str(err))
        return match["code"] if match else ""
    return ""


def mapped_error(err: Exception, location: S3Location, action: str) -> StereoCrafterError:
    """boto3/botocore failure -> the service's error for it (messages never carry credentials)."""
    if isinstance(err, StereoCrafterError):
        return err
    code, uri = error_code(err), echo(location.uri)
    if code in DENIED:
        return S3AccessDeniedError(f"access denied to {action} {uri}")
    if code in MISSING_BUCKET:
        if action == "write":
            return BadRequestError(f"the output bucket of {uri} does not exist")
        return InputNotFoundError(f"the bucket of {uri} does not exist")
    if code in MISSING_KEY and action == "read":
        return InputNotFoundError(f"no object at {uri}")
    if code in EXISTS and action == "write":
        return OutputExistsError(f"an object appeared at {uri} while the job ran, and overwrite is false")
    if code in CALLER_FAULT:
        return BadRequestError(f"cannot {action} {uri}: {CALLER_FAULT[code]} ({code})")
    logger.warning("S3 %s of %s failed: %s: %s", action, uri, type(err).__name__, err)
    return S3UnavailableError(f"S3 failed to {action} {uri} ({code or type(err).__name__})")
