"""The SageMaker contract on the real service: /ping during and after the weight download, conversions
into S3, one job per slot with /ping fast meanwhile, the served routes, sizes and padding, presets,
and start-ups that fail (no weights, a failed load, an S3 that never answers)."""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import threading
import time
from fractions import Fraction
from pathlib import Path

import httpx
import pytest

from stereocrafter.client import BadRequest, ServiceNotReady
from stereocrafter.media.video_io import probe
from stereocrafter.serving.storage import worst_case_call_s
from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.media import make_video, scene_frames
from stereocrafter.testing.net import StallingServer
from stereocrafter.testing.stack import Service, alive, start_service, stop, tree
from tests.service.helpers import BUCKET, CLIP, TOKEN, body


def test_ping_says_503_while_weights_download_then_200(service: Service, env: dict) -> None:
    assert 503 in service.pings and service.pings[-1] == 200
    assert service.pings.index(503) < len(service.pings) - 1
    hub: HubServer = env["hub"]
    assert hub.downloads and set(hub.auth_headers) == {f"Bearer {TOKEN}"}
    log = service.log_text()  # `stereocrafter doctor`'s lines at start-up, the known noise silenced
    assert "doctor: device: cpu" in log and "doctor: download at start-up: yes" in log
    assert "should be kept in float32: []" not in log and "requires torchvision" not in log
    # every download named the tiny repos' pinned commit; /ping lists every served preset's state
    assert hub.revisions and {revision for _, revision in hub.revisions} <= {
        hub.commit(repo) for repo, _ in hub.revisions
    }
    body = httpx.get(f"{service.url}/ping", timeout=5).json()
    assert body["status"] == "ready" and body["default_preset"] == "reference"
    assert body["presets"] == {
        p: {"state": "ready"} for p in ("reference", "fast", "turbo", "instant", "clean")
    }
    assert "presets ready: reference, fast, turbo, instant, clean" in log


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


@pytest.mark.slow  # a server of its own (12 s): in the slow tier, which CI runs too
def test_without_weights_the_server_starts_and_answers_503(env: dict) -> None:
    svc = start_service(env["tmp"], {"WEIGHTS_DIR": str(env["tmp"] / "empty-weights")})
    try:
        assert svc.healthy()
        with pytest.raises(ServiceNotReady) as caught:
            svc.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/o.mp4")
        message = caught.value.message
        assert caught.value.code == "weights_missing" and "8 components" in message and len(message) < 300
        # Stopping a server that no longer acts on SIGTERM: its worker, in a process group of
        # its own, must go too (killing only the arbiter left it running).
        processes = tree(svc.process.pid)
        assert len(processes) >= 2, processes  # the arbiter and its worker
        os.kill(svc.process.pid, signal.SIGSTOP)
        stop(svc, timeout=1)
        assert [p.pid for p in processes if alive(p)] == []
    finally:
        stop(svc)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/docs.json", 404),
        ("GET", "/schema.json", 404),
        ("GET", "/", 404),
        ("GET", "/readyz", 404),
        ("GET", "/healthz", 404),
        ("GET", "/livez", 404),
        ("GET", "/static_content/index.css", 404),
        ("GET", "/nowhere", 404),
        ("GET", "/invocations", 405),
        ("PUT", "/invocations", 405),
        ("POST", "/ping", 405),
        ("DELETE", "/metrics", 405),
        ("HEAD", "/ping", 405),
        ("POST", "/execution-parameters", 405),
    ],
)
def test_only_the_contract_routes_are_served_and_errors_are_json(
    service: Service, method: str, path: str, status: int
) -> None:
    response = httpx.request(method, f"{service.url}{path}", timeout=10)
    assert response.status_code == status
    data = (
        response.json()
        if method != "HEAD"
        else {"error": "method_not_allowed", "message": "", "request_id": ""}
    )
    assert set(data) == {"error", "message", "request_id"}
    assert data["error"] == {404: "not_found", 405: "method_not_allowed"}[status]
    if status == 405:
        assert response.headers["allow"]


def test_the_contract_routes_answer(service: Service) -> None:
    assert httpx.get(f"{service.url}/ping", timeout=5).status_code == 200
    assert httpx.get(f"{service.url}/metrics", timeout=5).status_code == 200
    # Batch Transform's question: one record per request, one request at a time per slot (one CPU slot)
    answer = httpx.get(f"{service.url}/execution-parameters", timeout=5)
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    assert answer.json() == {
        "MaxConcurrentTransforms": 1,
        "BatchStrategy": "SINGLE_RECORD",
        "MaxPayloadInMB": 1,
    }


@pytest.mark.parametrize(("width", "height"), [(33, 17), (1, 1)])
def test_the_response_reports_the_stored_size_and_its_padding(
    service: Service, env: dict, width: int, height: int
) -> None:
    frames = scene_frames(3, max(width, 2), max(height, 2))[:, :height, :width]
    clip = make_video(env["tmp"] / f"odd_{width}x{height}.mkv", frames, codec="ffv1", pix_fmt="yuv444p")
    env["s3"].upload_file(str(clip), BUCKET, f"in/odd_{width}.mkv")
    out_key = f"out/odd_{width}.mp4"
    result = service.client.convert(f"s3://{BUCKET}/in/odd_{width}.mkv", f"s3://{BUCKET}/{out_key}")
    local = env["tmp"] / f"odd_{width}_got.mp4"
    env["s3"].download_file(BUCKET, out_key, str(local))
    info = probe(local)
    assert (result["width"], result["height"]) == (info.width, info.height) == (width + 1, height + 1)
    assert (result["source_width"], result["source_height"]) == (width, height)
    assert result["padded"]["right"] == 1 and result["padded"]["bottom"] == 1
    assert "even" in result["padded"]["reason"]


def test_even_sizes_report_no_padding(service: Service) -> None:
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/even.mp4", mode="sbs")
    assert result["padded"] is None and (result["width"], result["height"]) == (128, 48)
    assert "preflight" in result["timings"]


def test_the_preset_is_chosen_per_request(service: Service) -> None:
    fast = service.client.convert(CLIP, f"s3://{BUCKET}/out/fast.mp4", mode="sbs", preset="fast")
    assert fast["preset"] == "fast" and (fast["width"], fast["height"], fast["frames"]) == (128, 48, 10)
    default = service.client.convert(CLIP, f"s3://{BUCKET}/out/default.mp4", mode="sbs")
    assert default["preset"] == "reference"  # STEREOCRAFTER_PRESET is not set
    with pytest.raises(BadRequest, match="unknown preset 'turbo2'; choose one of reference, fast, turbo"):
        service.client.convert(CLIP, f"s3://{BUCKET}/out/x.mp4", preset="turbo2")


@pytest.mark.slow  # a server of its own (9 s): in the slow tier, which CI runs too
def test_the_503_after_a_failed_load_hides_internal_details(env: dict) -> None:
    import boto3

    secrets = boto3.client("secretsmanager", endpoint_url=env["moto"], region_name="us-east-1")
    arn = secrets.create_secret(Name="hf-token-wrong", SecretString="hf_not_the_right_token")["ARN"]
    svc = start_service(
        env["tmp"],
        {
            "AWS_ENDPOINT_URL": env["moto"],
            "HF_ENDPOINT": env["hub"].url,
            "STEREOCRAFTER_WEIGHTS_MANIFEST": env["manifest"],
            "HF_TOKEN_ARN": arn,
            "WEIGHTS_DIR": str(env["tmp"] / "weights-wrong-token"),
        },
        wait_ready=False,
    )
    try:
        deadline = time.monotonic() + 120
        while httpx.get(f"{svc.url}/ping", timeout=5).json()["status"] != "failed":
            assert time.monotonic() < deadline, svc.log_text()[-2000:]
            time.sleep(0.5)
        assert httpx.get(f"{svc.url}/ping", timeout=5).status_code == 503
        response = svc.post(body())
        assert response.status_code == 503 and response.json()["error"] == "not_ready"
        message = response.json()["message"]
        assert "failed to load" in message
        assert "http" not in message and "127.0.0.1" not in message and "Error" not in message
        log = svc.log_text()  # the reason is in the log: each model's download refused (401)
        assert "weights of migan not downloaded" in log and "401" in log
        assert "weights incomplete after the download" in log
    finally:
        stop(svc)


@pytest.mark.slow  # a server of its own (12 s): in the slow tier, which CI runs too
def test_a_hung_s3_fails_the_request_in_bounded_time(env: dict, tiny_weights: Path) -> None:
    """S3 accepts connections and never answers: 502 after 3 tries x 1 s read time-out (the
    production budget is 3 x 15 s), and the service stays healthy."""
    with StallingServer() as stall:
        svc = start_service(
            env["tmp"],
            {
                "AWS_ENDPOINT_URL": stall.url,
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "WEIGHTS_DIR": str(tiny_weights),
                "STEREOCRAFTER_S3_READ_TIMEOUT": "1",
                "STEREOCRAFTER_S3_CONNECT_TIMEOUT": "1",
            },
        )
        try:
            started = time.monotonic()
            response = svc.post(body())
            elapsed = time.monotonic() - started
            assert response.status_code == 502, response.text
            assert (
                response.json()["error"] == "s3_unavailable" and "ReadTimeout" in response.json()["message"]
            )
            assert stall.accepted == 3
            assert elapsed < worst_case_call_s(3, 1.0, 1.0) + 5.0
            assert svc.healthy()
        finally:
            stop(svc)


def test_the_readme_request_runs_against_the_service(service: Service) -> None:
    """The README's code blocks marked ``runnable`` are what a newcomer copies first: each runs as
    written against this service (its address and bucket put in place of the README's) and prints
    what the README says a conversion answers."""
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"^```python runnable\n(.*?)^```", readme, flags=re.M | re.S)
    assert blocks, "the README has no runnable block"
    for code in blocks:
        code = code.replace("http://127.0.0.1:8080", service.url).replace(
            "s3://my-videos/", f"s3://{BUCKET}/"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["10", "30000/1001", "128", "48", "reference"], done.stdout
