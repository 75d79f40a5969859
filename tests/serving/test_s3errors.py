"""``serving.s3errors``: every S3 error code maps to the party at fault and its status."""

from __future__ import annotations

from pathlib import Path

import pytest
from botocore.stub import Stubber

from stereocrafter.errors import (
    BadRequestError,
    S3AccessDeniedError,
    S3UnavailableError,
)
from stereocrafter.serving.storage import S3Storage
from tests.support.s3 import offline_client


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("KeyTooLongError", 400, BadRequestError),
        ("InvalidBucketName", 400, BadRequestError),
        ("UriTooLong", 414, BadRequestError),
        ("InvalidObjectState", 403, BadRequestError),
        ("SlowDown", 503, S3UnavailableError),
        ("InternalError", 500, S3UnavailableError),
        ("AccessDenied", 403, S3AccessDeniedError),
    ],
)
def test_s3_errors_map_to_the_party_at_fault(code: str, status: int, expected: type, tmp_path: Path) -> None:
    client = offline_client(max_attempts=1)
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code=code, http_status_code=status)
        with pytest.raises(expected) as caught:
            S3Storage(client, max_attempts=1).download("s3://videos/a.mp4", tmp_path / "a")
    assert caught.value.status == expected.status
    assert "'s3://videos/a.mp4'" in caught.value.message


def test_an_error_s_code_is_read_from_its_response() -> None:
    import botocore.exceptions

    from stereocrafter.errors import S3AccessDeniedError
    from stereocrafter.locations import S3Location
    from stereocrafter.serving.s3errors import error_code, mapped_error

    err = botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied"}}, "GetObject")
    assert error_code(err) == "AccessDenied" and error_code(ValueError()) == ""
    mapped = mapped_error(err, S3Location.parse("s3://videos/k.mp4"), "read")
    assert isinstance(mapped, S3AccessDeniedError) and "s3://videos/k.mp4" in mapped.message
