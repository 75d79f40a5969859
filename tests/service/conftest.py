"""One real service for the whole package: a `bentoml serve` process on 127.0.0.1 against moto's
S3/Secrets Manager server and a local Hub-compatible server that hands out the tiny weights only for
the right bearer token (package scope: every file here talks to the same process)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest

from stereocrafter.media.encode import VideoWriter
from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.media import make_video, scene_frames
from stereocrafter.testing.stack import Service, start_service, stop
from stereocrafter.weights.integrity import LOCK_NAME
from tests.service.helpers import BUCKET, TOKEN, moto_env


@pytest.fixture(scope="package")
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
        manifest = str(tiny_weights / LOCK_NAME)  # the tiny repos' own pinned commits and digests
        yield {"tmp": tmp, "s3": s3, "arn": arn, "hub": hub, "moto": moto_server, "manifest": manifest}


@pytest.fixture(scope="package")
def service(env: dict) -> Iterator[Service]:
    work = env["tmp"] / "work"  # the jobs' temporary files
    work.mkdir()
    svc = start_service(
        env["tmp"],
        {
            **moto_env(env),
            "HF_ENDPOINT": env["hub"].url,
            "STEREOCRAFTER_WEIGHTS_MANIFEST": env["manifest"],
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
