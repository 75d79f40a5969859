"""S3 in/out against moto's real server, and the mapping of every failure to a service error."""

from __future__ import annotations

from pathlib import Path

import botocore.config
import pytest
from botocore.stub import Stubber

from stereocrafter.errors import (
    BadRequestError,
    InputNotFoundError,
    LimitExceededError,
    S3AccessDeniedError,
    S3UnavailableError,
)
from stereocrafter.storage import S3Storage


@pytest.fixture
def s3(aws):
    client = aws("s3")
    client.create_bucket(Bucket="videos")
    return client


def test_round_trip(s3, tmp_path: Path) -> None:
    storage = S3Storage(s3)
    s3.put_object(Bucket="videos", Key="in/a.mp4", Body=b"x" * 1000)
    assert storage.size("s3://videos/in/a.mp4") == 1000
    assert storage.download("s3://videos/in/a.mp4", tmp_path / "a", max_bytes=1000) == 1000
    assert (tmp_path / "a").read_bytes() == b"x" * 1000
    storage.upload(tmp_path / "a", "s3://videos/out/b.mp4")
    head = s3.head_object(Bucket="videos", Key="out/b.mp4")
    assert head["ContentLength"] == 1000 and head["ContentType"] == "video/mp4"


def test_multipart_upload(s3, tmp_path: Path) -> None:
    storage = S3Storage(s3, chunk_mib=5)
    big = tmp_path / "big"
    big.write_bytes(b"y" * (11 * 2**20))
    storage.upload(big, "s3://videos/out/big.mp4")
    assert s3.head_object(Bucket="videos", Key="out/big.mp4")["ETag"].strip('"').endswith("-3")


def test_missing_and_too_large(s3, tmp_path: Path) -> None:
    storage = S3Storage(s3)
    with pytest.raises(InputNotFoundError, match=r"no object at s3://videos/nope\.mp4"):
        storage.download("s3://videos/nope.mp4", tmp_path / "x")
    with pytest.raises(InputNotFoundError, match="bucket"):
        storage.download("s3://no-such-bucket/a.mp4", tmp_path / "x")
    s3.put_object(Bucket="videos", Key="in/big.mp4", Body=b"z" * 2000)
    with pytest.raises(LimitExceededError, match="2000 bytes; the limit is 1000"):
        storage.download("s3://videos/in/big.mp4", tmp_path / "x", max_bytes=1000)
    assert not (tmp_path / "x").exists()
    (tmp_path / "out").write_bytes(b"1")
    with pytest.raises(BadRequestError, match="output bucket"):
        storage.upload(tmp_path / "out", "s3://no-such-bucket/out.mp4")


def test_access_denied_maps_to_403(tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")
    with Stubber(client) as stub:
        stub.add_client_error("head_object", service_error_code="403", http_status_code=403)
        with pytest.raises(S3AccessDeniedError) as caught:
            S3Storage(client).download("s3://videos/a.mp4", tmp_path / "a")
    assert caught.value.status == 403


def test_unreachable_s3_maps_to_502(tmp_path: Path) -> None:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # nothing listens on the discard port
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    with pytest.raises(S3UnavailableError) as caught:
        S3Storage(client).download("s3://videos/a.mp4", tmp_path / "a")
    assert caught.value.status == 502 and "EndpointConnectionError" in caught.value.message


def test_failed_multipart_upload_leaves_nothing(s3, tmp_path: Path) -> None:
    """A part that fails after retries aborts the multipart upload: no object, no pending upload."""
    storage = S3Storage(s3, chunk_mib=5)
    calls = {"parts": 0}

    def fail_second_part(**kwargs: object) -> None:
        calls["parts"] += 1
        if calls["parts"] >= 2:
            raise ConnectionResetError("network dropped")

    s3.meta.events.register("before-send.s3.UploadPart", fail_second_part)
    big = tmp_path / "big"
    big.write_bytes(b"y" * (11 * 2**20))
    with pytest.raises(S3UnavailableError):
        storage.upload(big, "s3://videos/out/partial.mp4")
    s3.meta.events.unregister("before-send.s3.UploadPart", fail_second_part)
    assert "Contents" not in s3.list_objects_v2(Bucket="videos", Prefix="out/")
    assert not s3.list_multipart_uploads(Bucket="videos").get("Uploads")
