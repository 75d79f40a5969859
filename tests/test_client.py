"""The SageMaker backend of the client against moto's sagemaker-runtime server (the HTTP backend runs
against the real service in test_service.py), and the mapping of answers to typed errors."""

from __future__ import annotations

import json

import boto3
import pytest
import requests
from botocore.stub import Stubber

from stereocrafter.client import (
    BadRequest,
    InvalidVideo,
    SageMakerClient,
    SegmentTooLarge,
    ServiceError,
    ServiceNotReady,
    error_from,
)

RESULT = {"s3_output_uri": "s3://videos/out/a.mp4", "mode": "sbs", "frames": 10, "request_id": "abc"}


def test_error_from_status_and_body() -> None:
    body = json.dumps({"error": "segment_too_large", "message": "too long", "request_id": "r1"})
    err = error_from(413, body.encode())
    assert isinstance(err, SegmentTooLarge) and (err.status, err.code, err.message, err.request_id) == (
        413,
        "segment_too_large",
        "too long",
        "r1",
    )
    assert isinstance(error_from(503, b"{}"), ServiceNotReady)
    odd = error_from(504, b"<html>gateway timeout</html>")
    assert isinstance(odd, ServiceError) and "gateway timeout" in odd.message


def test_realtime_invoke_against_moto(aws, moto_server: str) -> None:
    requests.post(
        f"{moto_server}/moto-api/static/sagemaker/endpoint-results",
        json={"results": [{"Body": json.dumps(RESULT), "ContentType": "application/json"}]},
        timeout=10,
    )
    client = SageMakerClient("stereo", runtime=aws("sagemaker-runtime"), s3=aws("s3"))
    assert client.convert("s3://videos/in/a.mp4", "s3://videos/out/a.mp4", mode="sbs") == RESULT


def test_async_invoke_against_moto(aws, moto_server: str) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="requests")
    requests.post(
        f"{moto_server}/moto-api/static/sagemaker/async-endpoint-results",
        json={"results": [{"data": json.dumps(RESULT), "is_failure": False}]},
        timeout=10,
    )
    client = SageMakerClient("stereo", runtime=aws("sagemaker-runtime"), s3=s3)
    result = client.convert_async(
        "s3://videos/in/a.mp4",
        "s3://videos/out/a.mp4",
        request_prefix="s3://requests/jobs/",
        poll_interval=0.1,
        timeout=30,
    )
    assert result == RESULT
    uploaded = s3.list_objects_v2(Bucket="requests", Prefix="jobs/")["Contents"]
    request = json.loads(s3.get_object(Bucket="requests", Key=uploaded[0]["Key"])["Body"].read())
    assert request == {
        "s3_input_uri": "s3://videos/in/a.mp4",
        "s3_output_uri": "s3://videos/out/a.mp4",
        "mode": "anaglyph",
    }


def test_async_failure_is_typed(aws, moto_server: str) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="requests")
    failure = {"error": "invalid_video", "message": "not a readable media file", "request_id": "r2"}
    requests.post(
        f"{moto_server}/moto-api/static/sagemaker/async-endpoint-results",
        json={"results": [{"data": json.dumps(failure), "is_failure": True}]},
        timeout=10,
    )
    client = SageMakerClient("stereo", runtime=aws("sagemaker-runtime"), s3=s3)
    with pytest.raises(InvalidVideo) as caught:
        client.convert_async(
            "s3://videos/in/a.mp4", "s3://videos/o.mp4", request_prefix="s3://requests/", poll_interval=0.1
        )
    assert caught.value.request_id == "r2"


def test_model_error_carries_the_containers_status() -> None:
    """SageMaker wraps a container error in ModelError with the original status and body (moto cannot
    produce one: stubbed)."""
    runtime = boto3.client(
        "sagemaker-runtime", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    with Stubber(runtime) as stub:
        stub.add_client_error(
            "invoke_endpoint",
            service_error_code="ModelError",
            service_message="Received client error (400) from primary",
            http_status_code=424,
            modeled_fields={
                "OriginalStatusCode": 400,
                "OriginalMessage": json.dumps(
                    {
                        "error": "bad_request",
                        "message": "mode: Input should be 'anaglyph'",
                        "request_id": "r3",
                    }
                ),
            },
        )
        with pytest.raises(BadRequest) as caught:
            SageMakerClient("stereo", runtime=runtime, s3=object()).convert(
                "s3://v/a.mp4", "s3://v/b.mp4", mode="x"
            )
    assert caught.value.status == 400 and caught.value.request_id == "r3"
