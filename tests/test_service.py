"""The real service: a `bentoml serve` process on 127.0.0.1 against moto's S3/Secrets Manager server and a
local Hub-compatible server that hands out the tiny weights only for the right bearer token."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from stereocrafter.client import BadRequest, HttpClient, InputNotFound, InvalidVideo, ServiceNotReady
from stereocrafter.video_io import probe
from tests.hf_server import HubServer
from tests.media import make_video, scene_frames
from tests.net import free_port

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hf_service_secret_9f8e7d6c5b4a"
BUCKET = "videos"


class Service:
    def __init__(self, url: str, log: Path, process: subprocess.Popen[bytes], pings: list[int]) -> None:
        self.url, self.log, self.process, self.pings = url, log, process, pings
        self.client = HttpClient(url, timeout=600)

    def post(self, body: bytes | str, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/invocations", content=body, headers=headers, timeout=600)

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/ping", timeout=5).status_code == 200


def start_service(tmp: Path, env_extra: dict[str, str], wait_ready: bool = True) -> Service:
    port = free_port()
    log = tmp / f"service-{port}.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "BENTOML_", "STEREOCRAFTER_", "WEIGHTS"))
    }
    env.update(
        {
            "BENTOML_HOME": str(tmp / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "true",
            "STEREOCRAFTER_DEVICE": "cpu",
            "STEREOCRAFTER_DEPTH_STEPS": "2",
            "STEREOCRAFTER_INPAINT_STEPS": "2",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            **env_extra,
        }
    )
    bentoml = str(Path(sys.executable).parent / "bentoml")
    command = [bentoml, "serve", "service:StereoCrafter", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    pings: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, f"bentoml serve exited:\n{log.read_text()[-3000:]}"
        try:
            pings.append(httpx.get(f"{url}/ping", timeout=2).status_code)
        except httpx.HTTPError:
            pings.append(0)
        if pings[-1] == 200 or (pings[-1] and not wait_ready):
            return Service(url, log, process, pings)
        time.sleep(0.2)
    process.kill()
    raise AssertionError(f"service never became healthy:\n{log.read_text()[-3000:]}")


def stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        service.process.kill()


@pytest.fixture(scope="module")
def env(moto_server: str, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    import boto3
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    tmp = tmp_path_factory.mktemp("service")
    s3 = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    clip = make_video(
        tmp / "clip.mp4", scene_frames(10, 64, 48), fps=Fraction(30000, 1001), audio_codec="aac"
    )
    s3.upload_file(str(clip), BUCKET, "in/clip.mp4")
    s3.put_object(Bucket=BUCKET, Key="in/notes.mp4", Body=b"this is not a video")
    long_clip = make_video(tmp / "long.mp4", scene_frames(45, 64, 48), fps=24)
    s3.upload_file(str(long_clip), BUCKET, "in/long.mp4")
    secrets = boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1")
    arn = secrets.create_secret(Name="hf-token", SecretString=json.dumps({"HF_TOKEN": TOKEN}))["ARN"]
    with HubServer(tiny_weights, TOKEN) as hub:
        hub.delay = 0.3  # a slow download: /ping must say 503 meanwhile
        yield {"tmp": tmp, "s3": s3, "arn": arn, "hub": hub, "moto": moto_server}


@pytest.fixture(scope="module")
def service(env: dict) -> Iterator[Service]:
    svc = start_service(
        env["tmp"],
        {
            "AWS_ENDPOINT_URL": env["moto"],
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "HF_ENDPOINT": env["hub"].url,
            "HF_TOKEN_ARN": env["arn"],
            "WEIGHTS_DIR": str(env["tmp"] / "weights"),
            "STEREOCRAFTER_MAX_FRAMES": "40",
            "STEREOCRAFTER_MAX_INPUT_BYTES": "3000000",
        },
    )
    yield svc
    stop(svc)
    assert TOKEN not in svc.log.read_text(errors="replace"), "the Hugging Face token leaked into the logs"


def test_ping_says_503_while_weights_download_then_200(service: Service, env: dict) -> None:
    assert 503 in service.pings and service.pings[-1] == 200
    assert service.pings.index(503) < len(service.pings) - 1
    hub: HubServer = env["hub"]
    assert hub.downloads and set(hub.auth_headers) == {f"Bearer {TOKEN}"}


@pytest.mark.parametrize(("mode", "size"), [("anaglyph", (64, 48)), ("sbs", (128, 48))])
def test_conversion_writes_the_stereo_video_to_s3(
    service: Service, env: dict, mode: str, size: tuple
) -> None:
    out_key = f"out/clip_{mode}.mp4"
    result = service.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/{out_key}", mode=mode)
    assert (result["width"], result["height"], result["frames"]) == (*size, 10)
    assert result["fps"] == "30000/1001" and result["tiny_weights"] is True and result["has_audio"] is True
    local = env["tmp"] / f"got_{mode}.mp4"
    env["s3"].download_file(BUCKET, out_key, str(local))
    info = probe(local)
    assert (info.width, info.height, info.num_frames, info.fps) == (*size, 10, Fraction(30000, 1001))
    assert info.has_audio


CLIP, OUT = "s3://videos/in/clip.mp4", "s3://videos/o.mp4"


def body(**fields: object) -> bytes:
    return json.dumps({"s3_input_uri": CLIP, "s3_output_uri": OUT, **fields}).encode()


BAD_REQUESTS: list[tuple[str, bytes, int, str]] = [
    ("malformed JSON", b'{"s3_input_uri": ', 400, "bad_request"),
    ("empty body", b"", 400, "bad_request"),
    ("a JSON list", b"[1, 2]", 400, "bad_request"),
    ("unknown field", body(speed=2), 400, "bad_request"),
    ("missing output", json.dumps({"s3_input_uri": CLIP}).encode(), 400, "bad_request"),
    ("bad mode", body(mode="3d"), 400, "bad_request"),
    ("http URI", body(s3_input_uri="https://videos/in/clip.mp4"), 400, "bad_request"),
    ("URI without key", body(s3_input_uri="s3://videos"), 400, "bad_request"),
    ("output equals input", body(s3_output_uri=CLIP), 400, "bad_request"),
    ("max_disp out of range", body(max_disp=500), 400, "bad_request"),
    ("negative seed", body(seed=-1), 400, "bad_request"),
    ("tile_num 3", body(tile_num=3), 400, "bad_request"),
    ("missing object", body(s3_input_uri="s3://videos/in/none.mp4"), 404, "input_not_found"),
    ("missing bucket", body(s3_input_uri="s3://no-such-bucket/a.mp4"), 404, "input_not_found"),
    ("not a video", body(s3_input_uri="s3://videos/in/notes.mp4"), 422, "invalid_video"),
    ("too many frames", body(s3_input_uri="s3://videos/in/long.mp4"), 413, "segment_too_large"),
    ("output bucket missing", body(s3_output_uri="s3://no-such-bucket/o.mp4"), 400, "bad_request"),
]


@pytest.mark.parametrize(("case", "body", "status", "code"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_requests_get_their_status_and_leave_the_service_healthy(
    service: Service, env: dict, case: str, body: bytes, status: int, code: str
) -> None:
    response = service.post(body, **{"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    data = response.json()
    assert set(data) == {"error", "message", "request_id"} and data["error"] == code
    assert "Traceback" not in data["message"] and data["message"]
    assert response.headers["x-request-id"] == data["request_id"]
    assert service.healthy()
    objects = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="o.mp4").get("Contents", [])
    assert objects == [], "a failed job left an output object"


def test_client_raises_typed_errors(service: Service) -> None:
    with pytest.raises(BadRequest) as caught:
        service.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/o.mp4", mode="stereo")
    assert caught.value.status == 400 and caught.value.request_id
    with pytest.raises(InputNotFound):
        service.client.convert(f"s3://{BUCKET}/in/none.mp4", f"s3://{BUCKET}/o.mp4")
    with pytest.raises(InvalidVideo):
        service.client.convert(f"s3://{BUCKET}/in/notes.mp4", f"s3://{BUCKET}/o.mp4")
    assert service.client.ping()


def test_concurrent_requests_run_one_at_a_time_and_ping_stays_fast(service: Service) -> None:
    results: list[dict] = []
    errors: list[BaseException] = []

    def convert(i: int) -> None:
        try:
            results.append(
                service.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/out/c{i}.mp4")
            )
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=convert, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    latencies = []
    with httpx.Client(timeout=5) as http:  # one client: time the server, not TLS/context set-up
        while any(t.is_alive() for t in threads):
            started = time.perf_counter()
            assert http.get(f"{service.url}/ping").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
    for thread in threads:
        thread.join()
    assert not errors and len(results) == 4
    spans = sorted((r["started_at"], r["finished_at"]) for r in results)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end, "two jobs ran on the pipeline at the same time"
    # /ping is served by the event loop, never behind a job: milliseconds, not the job's seconds.
    assert len(latencies) > 10 and statistics.median(latencies) < 0.2 and max(latencies) < 1.0


def test_metrics_count_invocations(service: Service) -> None:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert "bentoml_service_request_total" in text and "/invocations" in text


def test_without_weights_the_server_starts_and_answers_503(env: dict) -> None:
    svc = start_service(env["tmp"], {"WEIGHTS_DIR": str(env["tmp"] / "empty-weights")})
    try:
        assert svc.healthy()
        with pytest.raises(ServiceNotReady) as caught:
            svc.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/o.mp4")
        assert caught.value.code == "weights_missing" and "vae/config.json" in caught.value.message
    finally:
        stop(svc)
