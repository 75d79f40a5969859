"""One budget for a job, end to end: the wait in the queue counts toward the deadline, and SIGTERM
stops a long job and a hung download and the server exits in time."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from stereocrafter.testing.net import S3Proxy
from stereocrafter.testing.stack import Service, alive, kill_tree, start_service, stop, tree
from tests.service.helpers import BUCKET, CLIP, moto_env, nothing_at, wait_for

pytestmark = pytest.mark.slow  # a server of its own for the module (20 s): the slow tier, which CI runs


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
                "WEIGHTS_DIR": str(env["tmp"] / "weights"),  # downloaded by the package's `service`
                "STEREOCRAFTER_DEPTH_STEPS": "1000",
                "STEREOCRAFTER_SLOTS": "2",
                "STEREOCRAFTER_WORK_DIR": str(work),
            },
        )
        yield svc, proxy, work
        stop(svc)


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
