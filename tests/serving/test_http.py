"""The in-process HTTP tier: the service's ASGI app (``StereoCrafter.to_asgi()``, the same routes,
middleware and handlers ``bentoml serve`` runs) under Starlette's test client, against moto's S3
on 127.0.0.1 and the tiny weights: request handling (``serving.http``: the routes, the body
limit, the error shape; the schema's answers; a conversion, its report and the depth task) in
seconds. The contract itself (a real ``bentoml serve`` process, port, readiness, SIGTERM) is
``tests/service``'s."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from stereocrafter.serving.http import ROUTES
from stereocrafter.testing.media import make_video, scene_frames

BUCKET = "inproc"
CLIP = f"s3://{BUCKET}/in/clip.mp4"
OUT = f"s3://{BUCKET}/o.mp4"
ENV = {
    "STEREOCRAFTER_DEVICE": "cpu",
    "STEREOCRAFTER_DEPTH_STEPS": "1",
    "STEREOCRAFTER_INPAINT_STEPS": "1",
    "STEREOCRAFTER_PRESETS": "reference,fast",  # turbo is not served here
    "STEREOCRAFTER_MAX_BODY_BYTES": "4096",
    "STEREOCRAFTER_INSTANCE_HOUR_PRICE": "3.6",  # one slot here: 0.001 per second held
    "BENTOML_DO_NOT_TRACK": "true",
}


@pytest.fixture(scope="module")
def s3(moto_server: str, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    clip = make_video(tmp_path_factory.mktemp("inproc") / "clip.mp4", scene_frames(8, 64, 48), fps=24)
    client.upload_file(str(clip), BUCKET, "in/clip.mp4")
    return client


@pytest.fixture(scope="module")
def client(moto_server: str, tiny_weights: Path, s3) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    env = {**ENV, "WEIGHTS_DIR": str(tiny_weights), "AWS_ENDPOINT_URL": moto_server}
    saved = {k: os.environ.get(k) for k in [*env, "HF_TOKEN_ARN"]}
    os.environ.pop("HF_TOKEN_ARN", None)
    os.environ.update(env)
    try:
        import service

        with TestClient(service.StereoCrafter.to_asgi(), raise_server_exceptions=False) as http:
            deadline = time.monotonic() + 120
            while http.get("/ping").status_code != 200:
                assert time.monotonic() < deadline, http.get("/ping").json()
                time.sleep(0.2)
            yield http
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _error(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["request_id"] == response.headers["X-Request-Id"]
    assert "Traceback" not in body["message"]
    return body


def test_only_the_routes_are_served_each_error_in_the_json_shape(client: TestClient) -> None:
    assert set(ROUTES) == {"/ping", "/execution-parameters", "/invocations", "/metrics"}
    _error(client.get("/docs.json"), 404, "not_found")
    assert client.get("/execution-parameters").json()["BatchStrategy"] == "SINGLE_RECORD"
    response = client.get("/invocations")
    _error(response, 405, "method_not_allowed")
    assert response.headers["Allow"] == "POST"
    # /metrics is BentoML's multiprocess Prometheus endpoint: the contract tier's (tests/service)


@pytest.mark.parametrize(
    ("body", "status", "code", "message"),
    [
        (b"{", 400, "bad_request", "not valid JSON"),
        (b"x" * 5000, 413, "body_too_large", "limit is 4096"),
        (json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/o.mp4", "preset": "turbo2"}), 400,
         "bad_request", "unknown preset 'turbo2'; choose one of reference, fast, turbo, instant, clean"),
        (json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/o.mp4", "preset": "turbo"}), 400,
         "preset_not_served", "serves the presets reference, fast (STEREOCRAFTER_PRESETS), not turbo"),
        (json.dumps({"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/o.mp4", "preset": "clean"}), 400,
         "preset_not_served", "serves the presets reference, fast (STEREOCRAFTER_PRESETS), not clean"),
        (json.dumps({"s3_input_uri": CLIP, "s3_output_uri": OUT, "depth_output_uri": CLIP}),
         400, "bad_request", "depth_output_uri does not apply to the stereo task"),
        (json.dumps({"s3_input_uri": CLIP, "s3_output_uri": CLIP}), 400, "bad_request", "names the input"),
        (json.dumps({"s3_input_uri": f"s3://{BUCKET}/in/none.mp4", "s3_output_uri": f"s3://{BUCKET}/o.mp4"}),
         404, "input_not_found", "none.mp4"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_precise_answer_and_write_nothing(
    client: TestClient,
    s3,
    body: bytes | str,
    status: int,
    code: str,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    answer = _error(client.post("/invocations", content=body), status, code)
    assert message in answer["message"]
    # a job that failed after taking its slot says what it held (the 404 is found by the job itself)
    assert ("gpu_seconds" in answer) == (status == 404)
    if status == 404:
        assert answer["gpu_seconds"] >= 0 and answer["cost"] == pytest.approx(answer["gpu_seconds"] / 1000)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="o.mp4")
    assert client.get("/ping").status_code == 200  # healthy afterwards


def test_a_conversion_writes_its_video_and_report_and_names_its_preset(client: TestClient, s3) -> None:  # type: ignore[no-untyped-def]
    out = f"s3://{BUCKET}/out/fast.mp4"
    response = client.post("/invocations", json={"s3_input_uri": CLIP, "s3_output_uri": out, "mode": "sbs",
                                                 "preset": "fast"})  # fmt: skip
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["preset"], answer["mode"], answer["frames"], answer["width"]) == ("fast", "sbs", 8, 128)
    assert answer["tiny_weights"] is True and answer["s3_output_uri"] == out
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]}
    # the video, its report and its record (what it was made from: ``jobs.records``)
    assert keys == {
        "out/fast.mp4",
        "out/fast.mp4.report.json",
        "out/fast.mp4.report.png",
        "out/fast.mp4.record.json",
    }
    report = json.loads(s3.get_object(Bucket=BUCKET, Key="out/fast.mp4.report.json")["Body"].read())
    assert report["preset"] == "fast" and report["tiny_weights"] is True
    assert answer["stereo_tag"] == report["stereo_tag"] == "st3d left_right" and answer["reused"] is False
    record = json.loads(s3.get_object(Bucket=BUCKET, Key="out/fast.mp4.record.json")["Body"].read())
    assert record["recipe"]["mode"] == "sbs" and record["recipe"]["config"]["preset"] == "fast"
    assert record["made"]["etag"] == s3.head_object(Bucket=BUCKET, Key="out/fast.mp4")["ETag"]
    # what the job cost: the seconds it held its slot, and its share of the configured price
    held = answer["finished_at"] - answer["started_at"]
    assert 0 < answer["gpu_seconds"] <= held + 0.05 and answer["cost"] == pytest.approx(
        answer["gpu_seconds"] / 1000, abs=2e-6
    )
    assert 0 < report["gpu_seconds"] <= answer["gpu_seconds"] and report["cost"] <= answer["cost"]


def test_the_depth_task_stores_the_raw_depth(client: TestClient, s3) -> None:  # type: ignore[no-untyped-def]
    depth = f"s3://{BUCKET}/out/clip.depth.mkv"
    response = client.post(
        "/invocations", json={"task": "depth", "s3_input_uri": CLIP, "depth_output_uri": depth}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["preset"] == "reference" and answer["frames"] == 8 and answer["depth_bytes"] > 0
    assert s3.head_object(Bucket=BUCKET, Key="out/clip.depth.mkv")["ContentLength"] == answer["depth_bytes"]
    assert answer["gpu_seconds"] > 0 and answer["cost"] > 0


def test_reuse_answers_from_the_record_only_for_the_same_request(client: TestClient, s3) -> None:  # type: ignore[no-untyped-def]
    """The same request with ``reuse`` answers the recorded answer (no conversion, the output
    untouched; overwrite false is no 409 then); another max_disp, a changed output or no reuse
    converts again."""
    out = f"s3://{BUCKET}/out/again.mp4"
    body = {"s3_input_uri": CLIP, "s3_output_uri": out, "mode": "sbs", "preset": "fast", "report": False}
    first = client.post("/invocations", json=body).json()
    etag = s3.head_object(Bucket=BUCKET, Key="out/again.mp4")["ETag"]
    again = client.post("/invocations", json={**body, "reuse": True, "overwrite": False})
    assert again.status_code == 200, again.text
    answer = again.json()
    assert answer["reused"] is True and answer["request_id"] != first["request_id"]
    assert set(answer["timings"]) == {"reuse_check"} and answer["gpu_seconds"] < first["gpu_seconds"]
    assert (answer["frames"], answer["encoder"], answer["stereo_tag"]) == (first["frames"], first["encoder"],
                                                                          first["stereo_tag"])  # fmt: skip
    assert s3.head_object(Bucket=BUCKET, Key="out/again.mp4")["ETag"] == etag
    wider = client.post("/invocations", json={**body, "reuse": True, "max_disp": 12.0}).json()
    assert wider["reused"] is False and "depth" in wider["timings"]
    s3.put_object(
        Bucket=BUCKET, Key="out/again.mp4", Body=b"replaced by hand"
    )  # its record no longer matches
    redone = client.post("/invocations", json={**body, "reuse": True, "max_disp": 12.0}).json()
    assert redone["reused"] is False
    assert client.post("/invocations", json=body).json()["reused"] is False  # no reuse asked


def test_another_writer_between_a_jobs_upload_and_its_record_is_not_recorded_as_the_job(
    client: TestClient,
    s3,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """Two writers of one output (two transform jobs, a retry beside a slow first try): the other
    one's upload lands after this job's and before this job writes its record. This job's recipe is
    never recorded with the other's bytes: the rerun with ``reuse`` converts again."""
    from stereocrafter.locations import S3Location
    from stereocrafter.serving.storage import S3Storage

    out, key = f"s3://{BUCKET}/out/contended.mp4", "out/contended.mp4"
    body = {"s3_input_uri": CLIP, "s3_output_uri": out, "mode": "sbs", "preset": "fast", "report": False}
    upload = S3Storage.upload

    def then_another_writer(self: S3Storage, path: Path, location: S3Location | str, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        upload(self, path, location, *args, **kwargs)
        if S3Location.parse(location).key == key:  # another job's video, with its own recipe's digest
            s3.put_object(Bucket=BUCKET, Key=key, Body=b"the other writer's video",
                          Metadata={"stereocrafter-recipe": "0" * 64})  # fmt: skip

    monkeypatch.setattr(S3Storage, "upload", then_another_writer)
    assert client.post("/invocations", json=body).status_code == 200
    monkeypatch.setattr(S3Storage, "upload", upload)
    again = client.post("/invocations", json={**body, "reuse": True}).json()
    assert again["reused"] is False and "depth" in again["timings"]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() != b"the other writer's video"
    answer = client.post("/invocations", json={**body, "reuse": True}).json()  # its own record now
    assert answer["reused"] is True


def test_a_record_written_by_something_else_is_never_trusted_blindly(client: TestClient, s3) -> None:  # type: ignore[no-untyped-def]
    """A record whose answer is not a valid answer converts again; one that names another output
    answers with the request's own URI."""
    out, key = f"s3://{BUCKET}/out/crafted.mp4", "out/crafted.mp4.record.json"
    body = {"s3_input_uri": CLIP, "s3_output_uri": out, "mode": "sbs", "preset": "fast", "report": False}
    assert client.post("/invocations", json=body).status_code == 200
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    s3.put_object(
        Bucket=BUCKET, Key=key, Body=json.dumps({**record, "answer": {**record["answer"], "frames": "many"}})
    )
    broken = client.post("/invocations", json={**body, "reuse": True})
    assert broken.status_code == 200 and broken.json()["reused"] is False
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())  # rewritten by that conversion
    elsewhere = {**record["answer"], "s3_output_uri": "s3://elsewhere/x.mp4"}
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({**record, "answer": elsewhere}))
    answer = client.post("/invocations", json={**body, "reuse": True}).json()
    assert answer["reused"] is True and answer["s3_output_uri"] == out
