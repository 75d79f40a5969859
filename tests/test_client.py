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


def test_convert_segments_on_the_sagemaker_async_backend(aws, moto_server: str) -> None:
    """``convert_segments`` through ``invoke_endpoint_async`` (moto hands back canned answers in
    order: three depth summaries, then three stereo results): the stereo requests SageMaker gets
    carry the stored depth and the maps that undo each segment's distortion."""
    import numpy as np

    from stereocrafter.client import convert_segments

    s3 = aws("s3")
    s3.create_bucket(Bucket="requests")
    truth = np.random.default_rng(4).uniform(0.1, 0.9, (36, 64))
    distortions = [(1.3, 0.2), (0.7, -0.1), (1.1, 0.05)]
    colour = np.full((18, 32, 3), 90).tolist()

    def summary(a: float, b: float) -> dict:
        d = (a * truth + b).tolist()
        stats = {"min": a * 0.1 + b, "max": a * 0.9 + b, "p1": a * 0.11 + b, "p99": a * 0.89 + b}
        thumbs = {"depth_first": d, "depth_last": d, "colour_first": colour, "colour_last": colour}
        return {"task": "depth", "stats": stats, "thumbnails": thumbs}

    answers = [summary(a, b) for a, b in distortions] + [{**RESULT, "frames": 8}] * 3
    requests.post(
        f"{moto_server}/moto-api/static/sagemaker/async-endpoint-results",
        json={"results": [{"data": json.dumps(a), "is_failure": False} for a in answers]},
        timeout=10,
    )
    client = SageMakerClient("stereo", runtime=aws("sagemaker-runtime"), s3=s3)
    backend = client.async_backend("s3://requests/jobs/", poll_interval=0.05, timeout=30)
    pairs = [(f"s3://videos/in/{i}.mp4", f"s3://videos/out/{i}.mp4") for i in range(3)]
    result = convert_segments(pairs, backend, mode="sbs", max_concurrency=1, preset="fast")
    assert result.failed == [] and all(o.ok for o in result.segments)
    bodies = [
        json.loads(s3.get_object(Bucket="requests", Key=o["Key"])["Body"].read())
        for o in sorted(s3.list_objects_v2(Bucket="requests")["Contents"], key=lambda o: o["LastModified"])
    ]
    depth_bodies = [b for b in bodies if b.get("task") == "depth"]
    stereo_bodies = [b for b in bodies if "task" not in b]
    assert sorted(b["depth_output_uri"] for b in depth_bodies) == [
        f"s3://videos/out/{i}.mp4.depth.mkv" for i in range(3)
    ]
    assert all(b["preset"] == "fast" and "mode" not in b for b in depth_bodies)
    for body in stereo_bodies:
        i = int(body["s3_input_uri"][-5])
        a, b = distortions[i]
        assert body["depth_uri"] == f"s3://videos/out/{i}.mp4.depth.mkv" and body["mode"] == "sbs"
        # the map takes segment i's raw depth back into the reference's (segment 1's) units
        ra, rb = distortions[1]
        assert body["depth_scale"] * a == pytest.approx(ra) and body["depth_scale"] * b + body[
            "depth_shift"
        ] == (pytest.approx(rb))
        assert body["depth_range"] == [pytest.approx(ra * 0.11 + rb), pytest.approx(ra * 0.89 + rb)]


def test_gpu_and_deadline_errors_are_typed() -> None:
    from stereocrafter.client import DeadlineExceeded, GpuFailed, InsufficientGpuMemory, retryable

    def body(code: str) -> bytes:
        return json.dumps({"error": code, "message": "m", "request_id": "r"}).encode()

    assert isinstance(error_from(504, body("deadline_exceeded")), DeadlineExceeded)
    assert isinstance(error_from(507, body("insufficient_gpu_memory")), InsufficientGpuMemory)
    failed = error_from(503, body("gpu_failed"))
    assert isinstance(failed, GpuFailed) and isinstance(failed, ServiceNotReady)
    assert retryable(failed) and retryable(error_from(504, body("deadline_exceeded")))
    assert not retryable(
        error_from(507, body("insufficient_gpu_memory"))
    )  # the same segment, the same memory
    import httpx

    assert retryable(httpx.ConnectError("refused")) and not retryable(ValueError("a bug"))  # no answer


def _every_service_error() -> dict[str, type[Exception]]:
    """Every error code the service can answer with: the ``StereoCrafterError`` subclasses of every
    module the service imports (imported here first, so one declared outside ``errors`` counts)."""
    import importlib
    import pkgutil

    import stereocrafter
    from stereocrafter.errors import StereoCrafterError

    for module in pkgutil.walk_packages(stereocrafter.__path__, "stereocrafter."):
        if module.name not in ("stereocrafter.demo", "stereocrafter.testing.weights"):
            importlib.import_module(module.name)
    found: dict[str, type[Exception]] = {}
    pending = [StereoCrafterError]
    while pending:
        cls = pending.pop()
        assert found.setdefault(cls.code, cls) is cls, f"two errors answer with the code {cls.code}"
        pending += cls.__subclasses__()
    return found


def test_every_error_code_the_service_answers_maps_to_one_client_exception() -> None:
    """The code -> class -> status table exists once (``errors``): each code the service can answer
    is typed by exactly one client exception, that keeps the status, over HTTP and through
    SageMaker's asynchronous failure object (which carries no status)."""
    from stereocrafter.client import ConversionError, _failure
    from stereocrafter.errors import CALLER_ERRORS

    served = _every_service_error()
    assert len(served) >= 20
    claimed: dict[str, list[str]] = {}
    for caller in _subclasses(ConversionError):
        for error in caller.stands_for:
            claimed.setdefault(error.code, []).append(caller.__name__)
    assert {code: names for code, names in claimed.items() if len(names) > 1} == {}
    for code, error in served.items():
        body = json.dumps({"error": code, "message": "m", "request_id": "r"}).encode()
        status = error.status  # type: ignore[attr-defined]
        typed = error_from(status, body)
        assert type(typed) is CALLER_ERRORS[code] and error in type(typed).stands_for, code
        assert (typed.status, typed.code, typed.request_id) == (status, code, "r")
        via_sagemaker = _failure(body)
        assert type(via_sagemaker) is type(typed) and via_sagemaker.status == status, code


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def test_the_client_imports_and_works_without_torch() -> None:
    """The video-worker installs the client alone: importing ``stereocrafter.client`` and typing
    an answer must not need torch, PyAV or the diffusion libraries (blocked in the subprocess)."""
    import subprocess
    import sys

    script = """
import sys

class Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "av", "diffusers", "transformers"}:
            raise ImportError(f"{name} is blocked: the client must work without it")
        return None

sys.meta_path.insert(0, Blocked())
from stereocrafter import client
err = client.error_from(504, b'{"error": "deadline_exceeded", "message": "m", "request_id": "r"}')
assert isinstance(err, client.DeadlineExceeded) and err.status == 504
assert callable(client.convert_segments) and client.HttpClient("http://127.0.0.1:9").ping(0.2) is False
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
