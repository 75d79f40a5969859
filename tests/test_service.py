"""The real service: a `bentoml serve` process on 127.0.0.1 against moto's S3/Secrets Manager server and a
local Hub-compatible server that hands out the tiny weights only for the right bearer token."""

from __future__ import annotations

import itertools
import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stereocrafter.client import BadRequest, InputNotFound, InvalidVideo, OutputExists, ServiceNotReady
from stereocrafter.echo import MESSAGE_LIMIT
from stereocrafter.storage import worst_case_call_s
from stereocrafter.video_io import VideoWriter, probe
from tests.hf_server import HubServer
from tests.media import make_video, scene_frames
from tests.memory import PeakGrowth
from tests.net import S3Proxy, StallingServer
from tests.service_process import Service, alive, kill_tree, start_service, stop, tree

TOKEN = "hf_service_secret_9f8e7d6c5b4a"
BUCKET = "videos"


def moto_env(env: dict) -> dict[str, str]:
    """What a service process needs to reach moto's server as its AWS."""
    return {
        "AWS_ENDPOINT_URL": env["moto"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


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
    with VideoWriter(tmp / "whole.mp4", fps=24, width=64, height=48) as writer:  # index in front
        writer.write(scene_frames(30, 64, 48))
    whole = (tmp / "whole.mp4").read_bytes()
    s3.put_object(Bucket=BUCKET, Key="in/cut.mp4", Body=whole[: int(len(whole) * 0.7)])
    secrets = boto3.client("secretsmanager", endpoint_url=moto_server, region_name="us-east-1")
    arn = secrets.create_secret(Name="hf-token", SecretString=json.dumps({"HF_TOKEN": TOKEN}))["ARN"]
    with HubServer(tiny_weights, TOKEN) as hub:
        hub.delay = 0.3  # a slow download: /ping must say 503 meanwhile
        yield {"tmp": tmp, "s3": s3, "arn": arn, "hub": hub, "moto": moto_server}


@pytest.fixture(scope="module")
def service(env: dict) -> Iterator[Service]:
    work = env["tmp"] / "work"  # the jobs' temporary files
    work.mkdir()
    svc = start_service(
        env["tmp"],
        {
            **moto_env(env),
            "HF_ENDPOINT": env["hub"].url,
            "HF_TOKEN_ARN": env["arn"],
            "WEIGHTS_DIR": str(env["tmp"] / "weights"),
            "STEREOCRAFTER_MAX_FRAMES": "40",
            "STEREOCRAFTER_MAX_INPUT_BYTES": "3000000",
            "STEREOCRAFTER_FAULTS_FILE": str(env["tmp"] / "faults"),  # empty: no fault pending
            "STEREOCRAFTER_WORK_DIR": str(work),
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
    log = service.log_text()  # `stereocrafter doctor`'s lines at start-up, the known noise silenced
    assert "doctor: device: cpu" in log and "doctor: download at start-up: yes" in log
    assert "should be kept in float32: []" not in log and "requires torchvision" not in log


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
    ("output is input plus a newline", body(s3_output_uri=CLIP + "\n"), 400, "bad_request"),
    ("key over 1024 bytes", body(s3_input_uri="s3://videos/" + "k" * 2000), 400, "bad_request"),
    ("body over 64 KiB", body(s3_input_uri="s3://videos/" + "k" * 100_000), 413, "body_too_large"),
    ("JSON nested 100,000 deep", b"[" * 30_000 + b"]" * 30_000, 400, "bad_request"),
    ("duplicate field", b'{"mode": "sbs", "mode": "anaglyph"}', 400, "bad_request"),
    (
        "missing output bucket, found before the input is read",
        body(s3_input_uri="s3://videos/in/notes.mp4", s3_output_uri="s3://no-such-bucket/o.mp4"),
        400,
        "bad_request",
    ),
    ("prefix as output", body(s3_output_uri="s3://videos/out/"), 400, "bad_request"),
    ("unknown preset", body(preset="turbo"), 400, "bad_request"),
    ("max_disp out of range", body(max_disp=500), 400, "bad_request"),
    ("negative seed", body(seed=-1), 400, "bad_request"),
    ("tile_num 3", body(tile_num=3), 400, "bad_request"),
    ("missing object", body(s3_input_uri="s3://videos/in/none.mp4"), 404, "input_not_found"),
    ("missing bucket", body(s3_input_uri="s3://no-such-bucket/a.mp4"), 404, "input_not_found"),
    ("not a video", body(s3_input_uri="s3://videos/in/notes.mp4"), 422, "invalid_video"),
    ("truncated video", body(s3_input_uri="s3://videos/in/cut.mp4"), 422, "invalid_video"),
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
    assert service.post(body(mode="3d")).status_code == 400
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert "bentoml_service_request_total" in text and "/invocations" in text


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            return float(value)
    return 0.0


def test_service_metrics_on_the_real_server(service: Service) -> None:
    before = httpx.get(f"{service.url}/metrics", timeout=5).text
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/metrics.mp4", mode="sbs", report=False)
    assert service.post(body(mode="3d")).status_code == 400
    for _ in range(5):
        assert service.healthy()
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    ok = metric(text, "stereocrafter_jobs_total", outcome="ok", code="")
    assert ok - metric(before, "stereocrafter_jobs_total", outcome="ok", code="") == 1
    bad = metric(text, "stereocrafter_jobs_total", outcome="error", code="bad_request")
    assert bad - metric(before, "stereocrafter_jobs_total", outcome="error", code="bad_request") == 1
    frames = metric(text, "stereocrafter_frames_total") - metric(before, "stereocrafter_frames_total")
    assert frames == result["frames"] == 10
    for stage in ("depth", "splat", "inpainting"):
        assert metric(text, "stereocrafter_stage_seconds_per_frame_count", stage=stage) >= 1
    assert metric(text, "stereocrafter_queue_wait_seconds_count") >= 1
    assert metric(text, "stereocrafter_model_state", state="ready") == 1
    assert metric(text, "stereocrafter_model_state", state="loading") == 0
    # /ping never counts as a job (BentoML's own request counters do count it: see the README)
    pings = metric(text, "stereocrafter_jobs_total", outcome="ok", code="") - ok
    assert pings == 0


def test_without_weights_the_server_starts_and_answers_503(env: dict) -> None:
    svc = start_service(env["tmp"], {"WEIGHTS_DIR": str(env["tmp"] / "empty-weights")})
    try:
        assert svc.healthy()
        with pytest.raises(ServiceNotReady) as caught:
            svc.client.convert(f"s3://{BUCKET}/in/clip.mp4", f"s3://{BUCKET}/o.mp4")
        message = caught.value.message
        assert caught.value.code == "weights_missing" and "6 components" in message and len(message) < 300
        # Stopping a server that no longer acts on SIGTERM: its worker, in a process group of
        # its own, must go too (killing only the arbiter left it running).
        processes = tree(svc.process.pid)
        assert len(processes) >= 2, processes  # the arbiter and its worker
        os.kill(svc.process.pid, signal.SIGSTOP)
        stop(svc, timeout=1)
        assert [p.pid for p in processes if alive(p)] == []
    finally:
        stop(svc)


# -- hardened request edges (issue: an output URI with a trailing newline overwrote the input) ----


def test_a_trailing_newline_does_not_overwrite_the_input(service: Service, env: dict) -> None:
    s3 = env["s3"]
    before = s3.head_object(Bucket=BUCKET, Key="in/clip.mp4")
    response = service.post(
        json.dumps({"s3_input_uri": CLIP, "s3_output_uri": CLIP + "\n"}),
        **{"Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "U+000A" in response.json()["message"]
    after = s3.head_object(Bucket=BUCKET, Key="in/clip.mp4")
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    assert service.healthy()


@pytest.mark.parametrize(
    "fields",
    [
        {"x" * 60_000: 1},
        {"s3_input_uri": "http://" + "a" * 60_000},
        {"s3_output_uri": "s3://videos/" + "k" * 60_000},
    ],
    ids=["60 KB field name", "60 KB http URI", "60 KB key"],
)
def test_error_messages_echo_a_bounded_part_of_the_input(service: Service, fields: dict) -> None:
    response = service.post(body(**fields))
    assert response.status_code == 400
    message = response.json()["message"]
    assert len(message) <= MESSAGE_LIMIT and "characters" in message
    assert len(response.content) < 2 * MESSAGE_LIMIT


def test_control_characters_never_reach_the_log_raw(service: Service) -> None:
    marker = "inject-7f3a"
    response = service.post(body(s3_output_uri=f"s3://videos/{marker}\x1b[2J\x1b[31m\r\nFAKE LOG LINE\x07"))
    assert response.status_code == 400
    assert "\x1b" not in response.text and "U+001B" in response.json()["message"]
    # an S3 failure logs the key: a key with a bidi override and a line separator (valid in S3)
    response = service.post(body(s3_input_uri=f"s3://videos/{marker}\u202e\u2028x.mp4"))
    assert response.status_code == 404
    log = service.log_text()
    assert "\x1b" not in log and "\x07" not in log and "\u202e" not in log and "\u2028" not in log


def test_a_declared_oversized_body_is_refused_before_it_is_read(service: Service) -> None:
    """A body declared as 512 MiB: 413 after the headers, with only a kilobyte sent."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 536870912\r\n\r\n"
    )
    status, payload, sent = service.raw_exchange(head, [b" " * 1024] * 64, pause=0.05)
    assert status == 413 and sent < 64 * 1024
    data = json.loads(payload)
    assert data["error"] == "body_too_large" and "65536" in data["message"]
    assert service.healthy()


def test_a_chunked_body_is_cut_off_at_the_limit(service: Service) -> None:
    """No length declared: the service stops reading at 64 KiB and answers 413."""
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (8192, b" " * 8192)
    status, payload, sent = service.raw_exchange(head, [chunk] * 512, pause=0.02)  # 4 MiB offered
    assert status == 413 and json.loads(payload)["error"] == "body_too_large"
    assert sent < 1024 * 1024  # answered long before the 4 MiB were sent
    assert service.healthy()


def test_a_body_just_under_the_limit_is_read(service: Service) -> None:
    padded = body(mode="sbs", s3_input_uri="s3://videos/in/none.mp4")
    padded = padded[:-1] + b" " * (65536 - len(padded)) + b"}"
    assert len(padded) == 65536
    assert service.post(padded).status_code == 404  # parsed, then the input was looked up


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


def test_the_preset_is_chosen_per_request(service: Service) -> None:
    fast = service.client.convert(CLIP, f"s3://{BUCKET}/out/fast.mp4", mode="sbs", preset="fast")
    assert fast["preset"] == "fast" and (fast["width"], fast["height"], fast["frames"]) == (128, 48, 10)
    default = service.client.convert(CLIP, f"s3://{BUCKET}/out/default.mp4", mode="sbs")
    assert default["preset"] == "reference"  # STEREOCRAFTER_PRESET is not set
    with pytest.raises(BadRequest, match="unknown preset 'turbo'; choose one of reference, fast"):
        service.client.convert(CLIP, f"s3://{BUCKET}/out/x.mp4", preset="turbo")


def test_the_report_lands_beside_the_video(service: Service, env: dict) -> None:
    from PIL import Image

    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/reported.mp4", mode="sbs", preset="fast")
    assert result["report_uris"] == {
        "json": f"s3://{BUCKET}/out/reported.mp4.report.json",
        "png": f"s3://{BUCKET}/out/reported.mp4.report.png",
    }
    assert "report_error" not in result or result["report_error"] is None
    assert result["report"]["hole_ratio"]["mean"] > 0 and "seam_stability" in result["report"]
    s3 = env["s3"]
    heads = {key: s3.head_object(Bucket=BUCKET, Key=f"out/{key}") for key in
             ("reported.mp4", "reported.mp4.report.json", "reported.mp4.report.png")}  # fmt: skip
    assert heads["reported.mp4.report.json"]["LastModified"] >= heads["reported.mp4"]["LastModified"]
    assert heads["reported.mp4.report.json"]["ContentType"] == "application/json"
    data = json.loads(s3.get_object(Bucket=BUCKET, Key="out/reported.mp4.report.json")["Body"].read())
    assert data["preset"] == "fast" and data["tiny_weights"] is True and data["num_frames"] == 10
    assert [row["frame"] for row in data["frames"]] == list(range(10)) and data["config"]["max_disp"] == 20
    local = env["tmp"] / "report.png"
    s3.download_file(BUCKET, "out/reported.mp4.report.png", str(local))
    with Image.open(local) as sheet:
        assert sheet.format == "PNG" and sheet.size[0] == 2 * 8 + 4 * 240 + 3 * 4


def test_a_failing_report_upload_keeps_the_job_and_its_video(service: Service, env: dict) -> None:
    """An output key of 1016 bytes is valid; its report's key (+ ".report.json") is over S3's 1024."""
    key = "out/" + "k" * 1008 + ".mp4"
    result = service.client.convert(CLIP, f"s3://{BUCKET}/{key}", mode="sbs")
    assert "1024" in result["report_error"] and result["report_uris"] is None
    assert result["report"] is not None  # the figures were computed; only the files are missing
    assert env["s3"].head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    listed = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key).get("Contents", [])
    assert [o["Key"] for o in listed] == [key]


def test_even_sizes_report_no_padding(service: Service) -> None:
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/even.mp4", mode="sbs")
    assert result["padded"] is None and (result["width"], result["height"]) == (128, 48)
    assert "preflight" in result["timings"]


def test_overwrite_false_refuses_an_existing_output(service: Service, env: dict) -> None:
    env["s3"].put_object(Bucket=BUCKET, Key="out/keep.mp4", Body=b"keep me")
    response = service.post(body(s3_output_uri=f"s3://{BUCKET}/out/keep.mp4", overwrite=False))
    assert response.status_code == 409 and response.json()["error"] == "output_exists"
    assert env["s3"].get_object(Bucket=BUCKET, Key="out/keep.mp4")["Body"].read() == b"keep me"
    with pytest.raises(OutputExists):
        service.client.convert(CLIP, f"s3://{BUCKET}/out/keep.mp4", overwrite=False)


def test_overwrite_false_guards_the_report_objects_too(service: Service, env: dict) -> None:
    """A job writes the video and, beside it, its report (.report.json, .report.png): with
    overwrite false an existing report object is refused before any work (409), and nothing of
    the job is written."""
    env["s3"].put_object(Bucket=BUCKET, Key="out/guarded.mp4.report.png", Body=b"an earlier report")
    response = service.post(body(s3_output_uri=f"s3://{BUCKET}/out/guarded.mp4", overwrite=False))
    assert response.status_code == 409 and response.json()["error"] == "output_exists", response.text
    assert "guarded.mp4.report.png" in response.json()["message"]
    listed = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/guarded.mp4")["Contents"]
    assert [o["Key"] for o in listed] == ["out/guarded.mp4.report.png"]  # no video, no JSON
    kept = env["s3"].get_object(Bucket=BUCKET, Key="out/guarded.mp4.report.png")["Body"].read()
    assert kept == b"an earlier report"
    # without a report, the same output is free to write
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/guarded.mp4", overwrite=False, report=False)
    assert result["frames"] == 10 and result["report_uris"] is None


# -- fuzzing the live server ---------------------------------------------------------------------

field_values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
live_uris = st.builds(
    lambda bucket, key, tail: f"s3://{bucket}/{key}{tail}",
    st.sampled_from(["videos", "no-such-bucket", "Bad_Bucket"]),
    st.text(st.characters(codec="utf-8"), min_size=0, max_size=30),
    st.sampled_from(["", "\n", "/", "\x1b[31m", "/../x"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    st.dictionaries(
        st.sampled_from(["s3_output_uri", "mode", "max_disp", "seed", "tile_num", "overwrite", "junk"]),
        field_values | live_uris,
        max_size=5,
    ),
    live_uris,
)
def test_fuzz_the_live_server_never_answers_5xx(service: Service, fields: dict, source: str) -> None:
    """Random requests against the running service, none of which can convert anything (the
    input never exists): every answer is a 4xx in the JSON error shape, within the bound."""
    payload = {"s3_input_uri": source.replace("videos/", "videos/absent/", 1), **fields}
    body = json.dumps(payload)  # (Python's encoder writes NaN and Infinity; the service refuses them)
    response = httpx.post(f"{service.url}/invocations", content=body, timeout=60)
    assert 400 <= response.status_code < 500, response.text
    data = response.json()
    assert set(data) == {"error", "message", "request_id"}
    assert len(data["message"]) <= MESSAGE_LIMIT and data["message"].isprintable()


# -- separate processes: a failed weight load, and an S3 that hangs ----------------------------------


def test_the_503_after_a_failed_load_hides_internal_details(env: dict) -> None:
    import boto3

    secrets = boto3.client("secretsmanager", endpoint_url=env["moto"], region_name="us-east-1")
    arn = secrets.create_secret(Name="hf-token-wrong", SecretString="hf_not_the_right_token")["ARN"]
    svc = start_service(
        env["tmp"],
        {
            "AWS_ENDPOINT_URL": env["moto"],
            "HF_ENDPOINT": env["hub"].url,
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
        assert "loading the models failed" in svc.log_text()  # the reason is in the log
    finally:
        stop(svc)


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


# --- long videos: the depth task, stored depth, convert_segments on the real service -------------

SEGMENT_FRAMES = 8


@pytest.fixture(scope="module")
def long_video(env: dict) -> dict:
    """A 32-frame source with audio and its 4 segments (8 frames each, with their audio), in S3."""
    frames = scene_frames(4 * SEGMENT_FRAMES, 64, 48, seed=9)
    tmp = env["tmp"]
    source = make_video(tmp / "film.mp4", frames, fps=24, audio_codec="aac")
    uris = []
    for i in range(4):
        part = frames[i * SEGMENT_FRAMES : (i + 1) * SEGMENT_FRAMES]
        path = make_video(tmp / f"film_{i}.mp4", part, fps=24, audio_codec="aac")
        env["s3"].upload_file(str(path), BUCKET, f"film/in_{i}.mp4")
        uris.append(f"s3://{BUCKET}/film/in_{i}.mp4")
    return {"source": source, "inputs": uris}


def test_the_depth_task_stores_the_depth_and_returns_its_summary(service: Service, env: dict,
                                                                  long_video: dict) -> None:  # fmt: skip
    result = service.client.depth(long_video["inputs"][0], f"s3://{BUCKET}/film/d0.mkv")
    assert result["task"] == "depth" and result["frames"] == SEGMENT_FRAMES and result["tiny_weights"]
    assert (result["source_width"], result["source_height"]) == (64, 48)
    stats = result["stats"]
    assert stats["min"] <= stats["p1"] <= stats["p99"] <= stats["max"]
    thumbs = result["thumbnails"]
    assert (result["depth_width"], result["depth_height"]) == (64, 64)  # the processing size
    assert len(thumbs["depth_first"]) == 64 and len(thumbs["depth_first"][0]) == 64
    assert len(thumbs["colour_last"]) == 24 and len(thumbs["colour_last"][0]) == 32
    local = env["tmp"] / "d0.mkv"
    env["s3"].download_file(BUCKET, "film/d0.mkv", str(local))
    assert local.stat().st_size == result["depth_bytes"]
    from stereocrafter.depthstore import DepthShape, read_depth

    stored = read_depth(local, DepthShape(SEGMENT_FRAMES, 64, 48, 64, 64))
    assert stored.num_frames == SEGMENT_FRAMES and (stored.low, stored.high) == (stats["min"], stats["max"])
    head = env["s3"].head_object(Bucket=BUCKET, Key="film/d0.mkv")
    assert head["ContentType"] == "video/x-matroska"


def test_a_stored_depth_is_reused_without_a_depth_pass(service: Service, env: dict, long_video: dict) -> None:
    segment, depth_uri = long_video["inputs"][1], f"s3://{BUCKET}/film/d1.mkv"
    service.client.depth(segment, depth_uri)
    before = httpx.get(f"{service.url}/metrics", timeout=5).text
    aligned = {"depth_scale": 1.5, "depth_shift": -0.1, "depth_range": [-0.2, 1.4]}
    reuse = f"s3://{BUCKET}/film/reuse.mp4"
    result = service.client.convert(segment, reuse, depth_uri=depth_uri, report=False, **aligned)
    after = httpx.get(f"{service.url}/metrics", timeout=5).text
    depth_passes = "stereocrafter_stage_seconds_per_frame_count"
    assert metric(after, depth_passes, stage="depth") == metric(before, depth_passes, stage="depth")
    assert (
        metric(after, depth_passes, stage="inpainting")
        == metric(before, depth_passes, stage="inpainting") + 1
    )
    assert "depth" not in result["timings"] and "depth_load" in result["timings"]
    assert result["frames"] == SEGMENT_FRAMES


def test_a_mismatched_or_damaged_depth_is_a_422_and_writes_nothing(service: Service, env: dict,
                                                                   long_video: dict) -> None:  # fmt: skip
    service.client.depth(CLIP, f"s3://{BUCKET}/film/clip_depth.mkv")  # 10 frames, not 8
    env["s3"].put_object(Bucket=BUCKET, Key="film/garbage.mkv", Body=b"\x1aE\xdf\xa3" + b"\x00" * 500)
    segment = long_video["inputs"][2]
    for depth_key, code in [("film/clip_depth.mkv", "depth_mismatch"), ("film/garbage.mkv", "invalid_depth")]:
        out_key = f"film/never_{code}.mp4"
        response = service.post(json.dumps({"s3_input_uri": segment, "s3_output_uri": f"s3://{BUCKET}/{out_key}",
                                            "depth_uri": f"s3://{BUCKET}/{depth_key}"}))  # fmt: skip
        assert response.status_code == 422 and response.json()["error"] == code, response.text
        assert "Traceback" not in response.text
        assert "Contents" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=out_key)
    missing = service.post(json.dumps({"s3_input_uri": segment, "s3_output_uri": f"s3://{BUCKET}/film/x.mp4",
                                       "depth_uri": f"s3://{BUCKET}/film/none.mkv"}))  # fmt: skip
    assert missing.status_code == 404
    assert service.healthy()


def test_a_crafted_depth_is_refused_before_it_is_decoded(service: Service, env: dict) -> None:
    """100 flat 4096x4096 16-bit frames (5 MB in S3, 3.4 GB decoded) tagged for this 96x64,
    8-frame segment: a 422 from the stream's header, and the service's memory stays flat (the
    reader before this decoded 9 frames, 300 MB, before it looked)."""
    from tests.test_long import depth_bomb

    segment = make_video(env["tmp"] / "small.mp4", scene_frames(8, 96, 64), fps=24)
    env["s3"].upload_file(str(segment), BUCKET, "bomb/segment.mp4")
    tag = {"version": 1, "low": 0.0, "high": 1.0, "frames": 8, "source_width": 96, "source_height": 64}
    bomb = depth_bomb(env["tmp"] / "bomb.mkv", 100, 4096, tag)
    env["s3"].upload_file(str(bomb), BUCKET, "bomb/depth.mkv")
    request = {"s3_input_uri": f"s3://{BUCKET}/bomb/segment.mp4", "s3_output_uri": f"s3://{BUCKET}/bomb/out.mp4",
               "depth_uri": f"s3://{BUCKET}/bomb/depth.mkv"}  # fmt: skip
    with PeakGrowth([p.pid for p in tree(service.process.pid)]) as growth:
        response = service.post(json.dumps(request))
    assert response.status_code == 422, response.text
    assert response.json()["error"] in ("depth_mismatch", "invalid_depth") and "4096x4096" in response.text
    print(f"crafted depth refused: peak resident memory rose by {growth.mb:.1f} MB")
    assert growth.mb < 256, f"the service's resident memory rose by {growth.mb:.0f} MB"
    assert nothing_at(env, "bomb/out") and service.healthy()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "depth", "s3_input_uri": CLIP}, "needs depth_output_uri"),
        ({"task": "depth", "s3_input_uri": CLIP, "depth_output_uri": CLIP}, "names the input object"),
        ({"task": "depth", "s3_input_uri": CLIP, "depth_output_uri": "s3://videos/d.mkv", "mode": "sbs"},
         "does not apply to the depth task"),
        ({"task": "both", "s3_input_uri": CLIP, "s3_output_uri": OUT}, "task"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_output_uri": "s3://videos/d.mkv"},
         "does not apply to the stereo task"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_scale": 0}, "depth_scale"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_range": [1, 0]}, "low < high"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_range": [0]}, "depth_range"),
        ({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_uri": OUT}, "depth_uri names"),
    ],
)  # fmt: skip
def test_bad_long_video_fields_are_400(service: Service, fields: dict, message: str) -> None:
    response = service.post(json.dumps(fields))
    assert response.status_code == 400 and message in response.json()["message"], response.text


def test_convert_segments_through_the_real_service_then_stitch(service: Service, env: dict,
                                                                long_video: dict) -> None:  # fmt: skip
    from stereocrafter.client import HttpClient, convert_segments
    from stereocrafter.stitch import stitch

    class FirstCallDropped(HttpClient):
        """Segment 1's first depth request meets a dead port (no answer): retried."""

        def __init__(self, url: str) -> None:
            super().__init__(url, timeout=600)
            self.dropped = False

        def depth(self, input_uri: str, depth_output_uri: str, **options: object) -> dict:
            if input_uri.endswith("in_1.mp4") and not self.dropped:
                self.dropped = True
                return HttpClient("http://127.0.0.1:9", timeout=2).depth(input_uri, depth_output_uri)
            return super().depth(input_uri, depth_output_uri, **options)

    inputs = long_video["inputs"]
    pairs = [(uri, f"s3://{BUCKET}/film/out_{i}.mp4") for i, uri in enumerate(inputs)]
    pairs.append(("s3://videos/in/notes.mp4", f"s3://{BUCKET}/film/out_bad.mp4"))  # not a video: 422
    backend = FirstCallDropped(service.url)
    result = convert_segments(pairs, backend, mode="sbs", max_concurrency=2, backoff=0.05, report=False)
    assert result.failed == [4]
    bad = result.segments[4]
    assert bad.stage == "depth" and bad.error_code == "invalid_video" and bad.attempts == {"depth": 1}
    assert result.segments[1].attempts == {"depth": 2, "stereo": 1}
    assert all(o.ok for o in result.segments[:4]) and result.alignment.segments[4] is None
    for i, outcome in enumerate(result.segments[:4]):
        assert outcome.result is not None and outcome.result["frames"] == SEGMENT_FRAMES
        assert outcome.depth_uri == f"s3://{BUCKET}/film/out_{i}.mp4.depth.mkv"
        assert "depth" not in outcome.result["timings"]  # the stored depth, no second pass
    parts = []
    for i in range(4):
        parts.append(env["tmp"] / f"film_out_{i}.mp4")
        env["s3"].download_file(BUCKET, f"film/out_{i}.mp4", str(parts[-1]))
    stitched = stitch(parts, env["tmp"] / "film_sbs.mp4", audio_from=long_video["source"])
    info = probe(env["tmp"] / "film_sbs.mp4")
    assert stitched.frames == info.num_frames == 4 * SEGMENT_FRAMES and (info.width, info.height) == (128, 48)
    assert stitched.audio == "aac copied" and info.has_audio
    assert service.healthy()


# --- GPU failures and deadlines (fault injection: STEREOCRAFTER_FAULTS_FILE) --------------------


def plant(env: dict, *faults: str) -> None:
    (env["tmp"] / "faults").write_text("".join(f"{f}\n" for f in faults))


def nothing_at(env: dict, key: str) -> bool:
    return "Contents" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key)


def test_an_out_of_memory_job_is_a_507_and_the_next_job_succeeds(service: Service, env: dict) -> None:
    plant(env, "oom")
    response = service.post(json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/oom.mp4"}))
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "insufficient_gpu_memory" and "fast preset" in body["message"]
    assert "Traceback" not in response.text and nothing_at(env, "gpu/oom.mp4")
    assert service.healthy()
    result = service.client.convert(CLIP, f"s3://{BUCKET}/gpu/after_oom.mp4", report=False)
    assert result["frames"] == 10


def test_a_non_finite_decode_is_retried_once_then_refused(service: Service, env: dict) -> None:
    plant(env, "overflow")  # the first decode overflows; its retry in float32 does not
    result = service.client.convert(CLIP, f"s3://{BUCKET}/gpu/overflow.mp4", report=False)
    assert result["frames"] == 10
    assert "decoding the chunk again in float32" in service.log_text()
    plant(env, "overflow", "overflow")  # the retry overflows too
    response = service.post(json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/nan.mp4"}))
    assert response.status_code == 500 and response.json()["error"] == "non_finite_output", response.text
    assert nothing_at(env, "gpu/nan.mp4") and service.healthy()


def test_a_deadline_stops_the_job_writes_nothing_and_frees_the_service(service: Service, env: dict) -> None:
    work = env["tmp"] / "work"
    body = {"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/late.mp4", "deadline_s": 0.3}
    started = time.monotonic()
    response = service.post(json.dumps(body))
    assert response.status_code == 504, response.text
    assert (
        response.json()["error"] == "deadline_exceeded" and "0.3 s (deadline_s)" in response.json()["message"]
    )
    assert time.monotonic() - started < 5
    assert nothing_at(env, "gpu/late.mp4") and list(work.iterdir()) == []  # temp files removed
    assert service.healthy()
    assert service.client.convert(CLIP, f"s3://{BUCKET}/gpu/on_time.mp4", report=False, deadline_s=600)[
        "frames"
    ]


def test_a_poisoned_cuda_context_turns_ping_to_503(service: Service, env: dict) -> None:
    faults = env["tmp"] / "fatal_faults"
    faults.write_text("cuda_fatal\n")
    svc = start_service(
        env["tmp"],
        {
            **moto_env(env),
            "WEIGHTS_DIR": str(env["tmp"] / "weights"),  # downloaded by the module's `service`
            "STEREOCRAFTER_FAULTS_FILE": str(faults),
        },
    )
    try:
        response = svc.post(
            json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/fatal.mp4"})
        )
        assert response.status_code == 503 and response.json()["error"] == "gpu_failed", response.text
        ping = httpx.get(f"{svc.url}/ping", timeout=5)
        assert ping.status_code == 503 and ping.json()["status"] == "failed"
        assert (
            "illegal memory access" in ping.json()["reason"]
            and "replace this instance" in ping.json()["reason"]
        )
        again = svc.post(json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/fatal2.mp4"}))
        assert again.status_code == 503 and "poisoned" in again.json()["message"]
        assert nothing_at(env, "gpu/fatal")
        metrics = httpx.get(f"{svc.url}/metrics", timeout=5).text
        assert metric(metrics, "stereocrafter_model_state", state="failed") == 1
    finally:
        stop(svc)


def test_cuda_asked_for_and_missing_fails_loudly(env: dict) -> None:
    svc = start_service(
        env["tmp"],
        {"WEIGHTS_DIR": str(env["tmp"] / "weights"), "STEREOCRAFTER_DEVICE": "cuda"},
        wait_ready=False,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ping = httpx.get(f"{svc.url}/ping", timeout=5)
            if ping.json().get("status") == "failed":
                break
            time.sleep(0.2)
        assert ping.status_code == 503 and ping.json()["status"] == "failed", ping.text
        reason = ping.json()["reason"]
        assert (
            "STEREOCRAFTER_DEVICE=cuda but no CUDA device is usable" in reason and "NVIDIA driver" in reason
        )
        assert "built for CUDA" in reason
        assert "no usable device" in svc.log_text()
        response = svc.post(json.dumps({"s3_input_uri": CLIP, "s3_output_uri": OUT}))
        assert response.status_code == 503 and "no CUDA device" in response.json()["message"]
    finally:
        stop(svc)


def test_two_slots_convert_two_requests_at_once_with_one_download(env: dict, tiny_weights: Path) -> None:
    """STEREOCRAFTER_SLOTS=2 on the CPU stands in for a 2-GPU instance: two pipelines in one
    process, the weights downloaded once, two concurrent requests running side by side."""
    with HubServer(tiny_weights, TOKEN) as hub:
        svc = start_service(
            env["tmp"],
            {
                **moto_env(env),
                "HF_ENDPOINT": hub.url,
                "HF_TOKEN_ARN": env["arn"],
                "WEIGHTS_DIR": str(env["tmp"] / "weights-2slots"),
                "STEREOCRAFTER_SLOTS": "2",
            },
        )
        try:
            assert hub.downloads and len(hub.downloads) == len(set(hub.downloads)), hub.downloads  # once each
            results: dict[int, dict] = {}

            def convert(i: int) -> None:
                results[i] = svc.client.convert(CLIP, f"s3://{BUCKET}/slots/{i}.mp4", report=False)

            threads = [threading.Thread(target=convert, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            a, b = results[0], results[1]
            assert {a["slot"], b["slot"]} == {0, 1} and a["device"] == b["device"] == "cpu"
            assert a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]  # side by side
            assert "slot 2 of 2 loaded on cpu" in svc.log_text()
        finally:
            stop(svc)


# --- one budget for a job, end to end: the queue, transfers, SIGTERM ------------------------------


@pytest.fixture(scope="module")
def slow_service(env: dict) -> Iterator[tuple[Service, S3Proxy, Path]]:
    """Two CPU slots, jobs of minutes (1000 depth steps), and S3 through a proxy in front of moto
    that never answers a GET of a key under ``hang/`` (an S3 read that hangs). The SIGTERM test
    ends it, so it comes last."""
    work = env["tmp"] / "slow-work"
    work.mkdir()
    hang = lambda method, path: "hang" if method == "GET" and "/hang/" in path else None  # noqa: E731
    with S3Proxy(env["moto"], hang) as proxy:
        svc = start_service(
            env["tmp"],
            {
                **moto_env(env),
                "AWS_ENDPOINT_URL": proxy.url,
                "WEIGHTS_DIR": str(env["tmp"] / "weights"),  # downloaded by the module's `service`
                "STEREOCRAFTER_DEPTH_STEPS": "1000",
                "STEREOCRAFTER_SLOTS": "2",
                "STEREOCRAFTER_WORK_DIR": str(work),
            },
        )
        yield svc, proxy, work
        stop(svc)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_the_wait_in_the_queue_counts_toward_the_deadline(
    service: Service, slow_service: tuple[Service, S3Proxy, Path], env: dict
) -> None:
    """Both slots hold jobs of minutes (each stopped by its own 8 s deadline); a request with
    ``deadline_s: 5`` queued behind them gets its 504 at 5 s, not when a slot frees at 8 s."""
    svc, _, _ = slow_service
    answers: dict[str, tuple[httpx.Response, float]] = {}

    def send(name: str, deadline_s: float) -> None:
        fields = {"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/queue/{name}.mp4", "report": False}
        sent = time.monotonic()
        response = svc.post(json.dumps({**fields, "deadline_s": deadline_s}))
        answers[name] = (response, time.monotonic() - sent)

    running = [threading.Thread(target=send, args=(name, 8)) for name in ("a", "b")]
    for thread in running:
        thread.start()
    wait_for(lambda: "queue/a.mp4' (anaglyph) on slot" in svc.log_text()
             and "queue/b.mp4' (anaglyph) on slot" in svc.log_text(), "both slots to start")  # fmt: skip
    send("queued", 5)
    for thread in running:
        thread.join(60)
    response, elapsed = answers["queued"]
    print(f"queued deadline_s 5: {response.status_code} after {elapsed:.2f} s; the jobs ahead: "
          f"{answers['a'][1]:.2f} s, {answers['b'][1]:.2f} s")  # fmt: skip
    assert response.status_code == 504 and response.json()["error"] == "deadline_exceeded", response.text
    assert 4.9 <= elapsed <= 5 + 1, f"the 504 came {elapsed:.2f} s after the request"
    for name in ("a", "b"):  # stopped in the depth stage by their own deadline
        assert answers[name][0].status_code == 504 and 7.9 <= answers[name][1] <= 9 + 1, answers[name]
    assert nothing_at(env, "queue/") and svc.healthy()


def test_sigterm_stops_a_long_job_and_a_hung_download_and_the_server_exits_in_time(
    slow_service: tuple[Service, S3Proxy, Path], env: dict
) -> None:
    """SageMaker and Docker send SIGTERM, then kill 10-30 s later. One slot is minutes into the
    depth stage, the other's input download hangs in a socket read (the read time-out is 15 s,
    tried 3 x 2 times): both callers get 503 shutting_down at once, nothing is written, the
    temporary files are gone and the whole process tree exits within 10 s."""
    svc, proxy, work = slow_service
    env["s3"].copy_object(
        Bucket=BUCKET, Key="hang/clip.mp4", CopySource={"Bucket": BUCKET, "Key": "in/clip.mp4"}
    )
    answers: dict[str, httpx.Response] = {}
    jobs = {"long": CLIP, "hung": f"s3://{BUCKET}/hang/clip.mp4"}

    def send(name: str) -> None:
        out = f"s3://{BUCKET}/sigterm/{name}.mp4"
        answers[name] = svc.post(json.dumps({"s3_input_uri": jobs[name], "s3_output_uri": out}))

    posters = [threading.Thread(target=send, args=(name,)) for name in jobs]
    for poster in posters:
        poster.start()
    wait_for(lambda: "sigterm/long.mp4' (anaglyph) on slot" in svc.log_text(), "the long job to start")
    wait_for(lambda: proxy.held >= 1, "the download to hang")
    time.sleep(2.0)  # well inside the depth stage and the hung read
    assert all(poster.is_alive() for poster in posters), "a job ended before the signal"
    processes = tree(svc.process.pid)
    sent = time.monotonic()
    svc.process.send_signal(signal.SIGTERM)
    try:
        wait_for(lambda: not any(alive(p) for p in processes), "the process tree to exit", 20)
        exited = time.monotonic() - sent
    finally:
        kill_tree(svc.process.pid, processes)
    for poster in posters:
        poster.join(10)
    print(f"SIGTERM: the process tree ({len(processes)} processes) exited in {exited:.2f} s")
    assert exited < 10, f"the process tree took {exited:.1f} s to exit"
    for name in jobs:
        assert name in answers, f"no answer for the {name} job"
        assert answers[name].status_code == 503 and answers[name].json()["error"] == "shutting_down", (
            name, answers[name].text)  # fmt: skip
    assert nothing_at(env, "sigterm/") and list(work.iterdir()) == []
    assert "SIGTERM: stopping the job in flight" in svc.log_text()
