"""What the service tests share: the bucket, the token, request bodies, metric samples, planted faults."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

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


CLIP, OUT = "s3://videos/in/clip.mp4", "s3://videos/o.mp4"


def body(**fields: object) -> bytes:
    return json.dumps({"s3_input_uri": CLIP, "s3_output_uri": OUT, **fields}).encode()


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``, in Prometheus text format
    (0 when none): one preset's series, or all of them."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        sample, _, label_text = head.partition("{")
        if sample != name:
            continue
        found = dict(part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part)
        if all(found.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(value)
    return total


def plant(env: dict, *faults: str) -> None:
    (env["tmp"] / "faults").write_text("".join(f"{f}\n" for f in faults))


def nothing_at(env: dict, key: str) -> bool:
    return "Contents" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix=key)


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
