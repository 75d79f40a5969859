"""GPU failures on the real service, planted through STEREOCRAFTER_FAULTS_FILE: out of memory, a
non-finite decode, a passed deadline, a poisoned CUDA context, CUDA missing, and two slots."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pytest

from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.stack import Service, start_service, stop
from tests.service.helpers import BUCKET, CLIP, OUT, TOKEN, metric, moto_env, nothing_at, plant


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
    # 0.05 s: less than the depth stage alone takes on the tiny weights (0.13 s on an idle 2-core
    # machine), so a stop check always finds it passed; 0.3 s could be beaten by an idle machine
    body = {"s3_input_uri": CLIP, "s3_output_uri": f"s3://{BUCKET}/gpu/late.mp4", "deadline_s": 0.05}
    started = time.monotonic()
    response = service.post(json.dumps(body))
    assert response.status_code == 504, response.text
    assert (
        response.json()["error"] == "deadline_exceeded"
        and "0.05 s (deadline_s)" in response.json()["message"]
    )
    assert time.monotonic() - started < 5
    assert nothing_at(env, "gpu/late.mp4") and list(work.iterdir()) == []  # temp files removed
    assert service.healthy()
    assert service.client.convert(CLIP, f"s3://{BUCKET}/gpu/on_time.mp4", report=False, deadline_s=600)[
        "frames"
    ]


@pytest.mark.slow  # a server of its own (9 s): in the slow tier, which CI runs too
def test_a_poisoned_cuda_context_turns_ping_to_503(service: Service, env: dict) -> None:
    faults = env["tmp"] / "fatal_faults"
    faults.write_text("cuda_fatal\n")
    svc = start_service(
        env["tmp"],
        {
            **moto_env(env),
            "WEIGHTS_DIR": str(env["tmp"] / "weights"),  # downloaded by the package's `service`
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


@pytest.mark.slow  # a server of its own (8 s): in the slow tier, which CI runs too
def test_cuda_asked_for_and_missing_fails_loudly(env: dict) -> None:
    """No usable GPU: the service starts and says why on /ping, with an instance price configured
    too (a job's cost is the price shared among the GPUs; with none, the start once divided by zero)."""
    svc = start_service(
        env["tmp"],
        {"WEIGHTS_DIR": str(env["tmp"] / "weights"), "STEREOCRAFTER_DEVICE": "cuda",
         "STEREOCRAFTER_INSTANCE_HOUR_PRICE": "4.1"},
        wait_ready=False,
    )  # fmt: skip
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


@pytest.mark.slow  # a server of its own with two slots (13 s): in the slow tier
def test_two_slots_convert_two_requests_at_once_with_one_download(env: dict, tiny_weights: Path) -> None:
    """STEREOCRAFTER_SLOTS=2 on the CPU stands in for a 2-GPU instance: two pipelines in one
    process, the weights downloaded once, two concurrent requests running side by side."""
    with HubServer(tiny_weights, TOKEN) as hub:
        svc = start_service(
            env["tmp"],
            {
                **moto_env(env),
                "HF_ENDPOINT": hub.url,
                "STEREOCRAFTER_WEIGHTS_MANIFEST": env["manifest"],
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
