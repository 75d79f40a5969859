"""One missing model on a real ``bentoml serve`` process (slow tier): tiny weights without MI-GAN's
file, no ``HF_TOKEN_ARN``, every preset served. /ping answers 200 and lists each preset's state,
``turbo`` and ``instant`` convert, ``clean`` answers its own 503 (``PresetUnavailable`` in the client)
with no traceback and nothing written, and the service stays healthy; the metrics say which preset is
down."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from stereocrafter.client import PresetUnavailable
from stereocrafter.testing.stack import start_service, stop
from stereocrafter.testing.weights import MIGAN_REPO
from tests.service.helpers import BUCKET, CLIP, metric, moto_env, nothing_at


@pytest.mark.slow  # a server of its own
def test_an_endpoint_without_mi_gan_serves_every_other_preset(env: dict, tiny_weights: Path) -> None:
    weights = env["tmp"] / "no-migan-weights"
    shutil.copytree(tiny_weights, weights)
    shutil.rmtree(weights / MIGAN_REPO)
    svc = start_service(env["tmp"], {**moto_env(env), "WEIGHTS_DIR": str(weights)})
    try:
        ping = httpx.get(f"{svc.url}/ping", timeout=5)
        assert ping.status_code == 200 and ping.json()["status"] == "ready"
        states = {preset: about["state"] for preset, about in ping.json()["presets"].items()}
        assert states == {"reference": "ready", "fast": "ready", "turbo": "ready", "instant": "ready",
                          "clean": "missing"}  # fmt: skip
        for preset in ("turbo", "instant"):
            result = svc.client.convert(CLIP, f"s3://{BUCKET}/out/partial_{preset}.mp4", preset=preset)
            assert result["preset"] == preset and result["frames"] == 10
        with pytest.raises(PresetUnavailable) as caught:
            svc.client.convert(CLIP, f"s3://{BUCKET}/out/partial_clean.mp4", mode="sbs", preset="clean")
        assert caught.value.status == 503 and caught.value.code == "preset_unavailable"
        assert "its model migan (andraniksargsyan/migan) is missing" in caught.value.message
        assert "Traceback" not in caught.value.message and caught.value.request_id
        assert nothing_at(env, "out/partial_clean")
        assert svc.healthy()
        metrics = httpx.get(f"{svc.url}/metrics", timeout=5).text
        assert metric(metrics, "stereocrafter_preset_state", preset="clean", state="missing") == 1
        assert metric(metrics, "stereocrafter_preset_state", preset="turbo", state="ready") == 1
        assert "Traceback" not in svc.log_text()
    finally:
        stop(svc)
