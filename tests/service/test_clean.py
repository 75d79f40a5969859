"""The licence-clean presets through the service: ``instant`` and ``clean`` on the shared endpoint,
and an endpoint that serves only them: it starts without ``HF_TOKEN_ARN``, fetches only public
repos anonymously (VDA-S and MI-GAN; no SVD, StereoCrafter or DepthCrafter file, no gated repo
asked), converts with audio and refuses the research presets with 400 ``preset_not_served``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.client import BadRequest
from stereocrafter.media.video_io import probe
from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.stack import Service, start_service, stop
from stereocrafter.testing.weights import MIGAN_REPO
from tests.service.helpers import BUCKET, CLIP, TOKEN, moto_env

VDA_REPO = "depth-anything/Video-Depth-Anything-Small"


@pytest.mark.parametrize("preset", ["instant", "clean"])
def test_a_clean_preset_converts_on_an_endpoint_serving_every_preset(
    service: Service, env: dict, preset: str
) -> None:
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/{preset}.mp4", mode="sbs", preset=preset)
    assert result["preset"] == preset and (result["width"], result["frames"]) == (128, 10)
    assert result["has_audio"] is True and result["tiny_weights"] is True
    local = env["tmp"] / f"{preset}.mp4"
    env["s3"].download_file(BUCKET, f"out/{preset}.mp4", str(local))
    info = probe(local)
    assert (info.width, info.num_frames) == (128, 10) and info.has_audio


@pytest.mark.slow  # a server of its own: in the slow tier, which CI runs too
def test_a_clean_only_endpoint_needs_no_token_and_no_svd(env: dict, tiny_weights: Path) -> None:
    weights = env["tmp"] / "clean-weights"
    with HubServer(tiny_weights, TOKEN, public=(VDA_REPO, MIGAN_REPO)) as hub:
        svc = start_service(
            env["tmp"],
            {**moto_env(env), "HF_ENDPOINT": hub.url, "WEIGHTS_DIR": str(weights),
             "STEREOCRAFTER_WEIGHTS_MANIFEST": env["manifest"],
             "STEREOCRAFTER_PRESETS": "clean,instant"},
        )  # fmt: skip
        try:
            assert set(hub.auth_headers) == {""}  # no token was sent, none was read
            fetched = set(hub.downloads)
            assert f"{VDA_REPO}/video_depth_anything_vits.pth" in fetched
            assert f"{MIGAN_REPO}/migan_pipeline_v2.onnx" in fetched  # the file the repo holds
            assert all(f.startswith((VDA_REPO, MIGAN_REPO)) for f in fetched), fetched
            asked = {r.split()[1] for r in hub.requests}
            assert not any(("stabilityai" in r or "tencent" in r.lower()) for r in asked), asked
            for absent in ("stabilityai", "tencent", "TencentARC"):
                assert not (weights / absent).exists()
            log = svc.log.read_text(errors="replace")
            assert "downloading what" in log and "without a token" in log
            assert "model svd (stabilityai/stable-video-diffusion-img2vid-xt-1-1)" in log
            assert "not loaded (no preset served uses it)" in log

            result = svc.client.convert(CLIP, f"s3://{BUCKET}/out/clean_only.mp4", mode="sbs")
            assert result["preset"] == "clean" and result["frames"] == 10 and result["has_audio"]
            result = svc.client.convert(CLIP, f"s3://{BUCKET}/out/instant_only.mp4", preset="instant")
            assert result["preset"] == "instant"
            for preset in ("reference", "turbo"):
                with pytest.raises(BadRequest) as caught:
                    svc.client.convert(CLIP, f"s3://{BUCKET}/out/not_served.mp4", preset=preset)
                assert caught.value.status == 400 and caught.value.code == "preset_not_served"
                assert "serves the presets clean, instant" in caught.value.message
            assert "Key" not in env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/not_served")
            assert svc.healthy()
        finally:
            stop(svc)
