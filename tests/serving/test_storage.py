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
    OutputExistsError,
    S3AccessDeniedError,
    S3UnavailableError,
)
from stereocrafter.locations import S3Location
from stereocrafter.serving.storage import S3Storage, client_config, worst_case_call_s
from stereocrafter.testing.net import StallingServer
from tests.support.s3 import offline_client
from tests.support.stops import Calls


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
    with pytest.raises(InputNotFoundError, match=r"no object at 's3://videos/nope\.mp4'"):
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


def test_preflight_finds_a_missing_output_bucket_before_any_download(s3, tmp_path: Path) -> None:
    s3.put_object(Bucket="videos", Key="in/a.mp4", Body=b"x" * 10)
    storage = S3Storage(s3)
    with pytest.raises(BadRequestError, match="output bucket"):
        storage.preflight("s3://videos/in/a.mp4", "s3://no-such-bucket/out.mp4")
    with pytest.raises(InputNotFoundError):
        storage.preflight("s3://videos/in/missing.mp4", "s3://videos/out.mp4")
    info = storage.preflight("s3://videos/in/a.mp4", "s3://videos/out/a.mp4")
    assert info.size == 10
    # the write probe leaves neither an object nor a pending multipart upload behind
    assert "Contents" not in s3.list_objects_v2(Bucket="videos", Prefix="out/")
    assert not s3.list_multipart_uploads(Bucket="videos").get("Uploads")


def test_overwrite_false_refuses_an_existing_output_and_one_that_appears_later(s3, tmp_path: Path) -> None:
    s3.put_object(Bucket="videos", Key="in/a.mp4", Body=b"input")
    s3.put_object(Bucket="videos", Key="out/taken.mp4", Body=b"precious")
    storage = S3Storage(s3, chunk_mib=5)
    with pytest.raises(OutputExistsError) as caught:
        storage.preflight("s3://videos/in/a.mp4", "s3://videos/out/taken.mp4", overwrite=False)
    assert caught.value.status == 409
    # overwrite true (the default) passes the same check
    storage.preflight("s3://videos/in/a.mp4", "s3://videos/out/taken.mp4")

    local = tmp_path / "result"
    for size in (100, 11 * 2**20):  # PutObject, then a 3-part multipart upload
        local.write_bytes(b"r" * size)
        with pytest.raises(OutputExistsError):  # appeared after the preflight: If-None-Match: *
            storage.upload(local, S3Location("videos", "out/taken.mp4"), overwrite=False)
        body = s3.get_object(Bucket="videos", Key="out/taken.mp4")["Body"].read()
        assert body == b"precious"
        assert not s3.list_multipart_uploads(Bucket="videos").get("Uploads")
    storage.upload(local, "s3://videos/out/new.mp4", overwrite=False)
    assert s3.head_object(Bucket="videos", Key="out/new.mp4")["ContentLength"] == 11 * 2**20
    # the condition applied to that one write only
    storage.upload(local, "s3://videos/out/taken.mp4")
    assert s3.head_object(Bucket="videos", Key="out/taken.mp4")["ContentLength"] == 11 * 2**20


def test_preflight_refuses_the_input_under_another_name(tmp_path: Path) -> None:
    """An access-point alias names the same object as its bucket: S3 then reports the same size,
    ETag and time for both names, and the output is refused before anything runs."""
    import datetime

    client = offline_client()
    head = {
        "ContentLength": 123,
        "ETag": '"abc"',
        "LastModified": datetime.datetime(2026, 11, 28, tzinfo=datetime.UTC),
    }
    with Stubber(client) as stub:
        stub.add_response("head_object", head, {"Bucket": "videos", "Key": "in/a.mp4"})
        stub.add_response("head_object", head, {"Bucket": "videos-ap-abc-s3alias", "Key": "in/a.mp4"})
        with pytest.raises(BadRequestError, match="input object under another name"):
            S3Storage(client).preflight("s3://videos/in/a.mp4", "s3://videos-ap-abc-s3alias/in/a.mp4")
        stub.assert_no_pending_responses()


def test_hung_s3_fails_within_the_time_out_budget(tmp_path: Path) -> None:
    """An endpoint that accepts connections and never answers: every call gives up after its
    attempts x read time-out (here 3 x 0.5 s plus back-off), not botocore's 60 s per read."""
    import time

    settings = {"max_attempts": 3, "connect_timeout": 1.0, "read_timeout": 0.5}
    with StallingServer() as stall:
        storage = S3Storage(offline_client(stall.url, **settings), **settings)
        started = time.monotonic()
        with pytest.raises(S3UnavailableError) as caught:
            storage.download("s3://videos/a.mp4", tmp_path / "a")
        elapsed = time.monotonic() - started
    assert caught.value.status == 502 and "ReadTimeout" in caught.value.message
    assert stall.accepted == 3  # the standard retry budget, no more
    assert elapsed < worst_case_call_s(**settings) + 2.0  # type: ignore[arg-type]
    assert not (tmp_path / "a").exists()


def test_the_default_budget_bounds_a_hung_call_to_about_a_minute() -> None:
    config = client_config()
    assert config.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (3.0, 15.0)
    assert worst_case_call_s() <= 60.0


def test_a_small_upload_is_multipart_too(s3, tmp_path: Path) -> None:
    """One part for a small file: the object appears only with CompleteMultipartUpload, which
    a stopped upload never sends."""
    seen: list[str] = []
    s3.meta.events.register(
        "before-send.s3", lambda request, **_: seen.append(request.method + " " + request.url)
    )
    (tmp_path / "small").write_bytes(b"s" * 100)
    S3Storage(s3).upload(tmp_path / "small", "s3://videos/out/small.mp4", stop=Calls(lambda: None))
    assert s3.get_object(Bucket="videos", Key="out/small.mp4")["Body"].read() == b"s" * 100
    assert any("?uploads" in url for url in seen) and any("uploadId=" in url and "partNumber" not in url
                                                         for url in seen)  # fmt: skip
