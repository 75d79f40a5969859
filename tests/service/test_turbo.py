"""The turbo preset through the service: a conversion on the shared endpoint (every preset served),
a stored depth refused by a preset of the other depth model, and an endpoint that serves turbo
alone: it downloads and loads no DepthCrafter file and refuses the presets it does not serve."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.client import BadRequest, InvalidDepth
from stereocrafter.media.depthstore import TAG
from stereocrafter.media.video_io import probe
from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.stack import Service, start_service, stop
from tests.service.helpers import BUCKET, CLIP, TOKEN, moto_env


def test_turbo_converts_on_an_endpoint_serving_every_preset(service: Service, env: dict) -> None:
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/turbo.mp4", mode="sbs", preset="turbo")
    assert result["preset"] == "turbo" and (result["width"], result["height"], result["frames"]) == (
        128,
        48,
        10,
    )
    assert result["tiny_weights"] is True and "depth" in result["timings"]
    local = env["tmp"] / "turbo.mp4"
    env["s3"].download_file(BUCKET, "out/turbo.mp4", str(local))
    assert (probe(local).width, probe(local).num_frames) == (128, 10)


def test_a_stored_depth_is_refused_by_a_preset_of_the_other_depth_model(service: Service, env: dict) -> None:
    import av

    made = {}
    for preset in ("fast", "turbo"):
        uri = f"s3://{BUCKET}/depth/clip.{preset}.mkv"
        made[preset] = service.client.depth(CLIP, uri, preset=preset)
        local = env["tmp"] / f"clip.{preset}.mkv"
        env["s3"].download_file(BUCKET, f"depth/clip.{preset}.mkv", str(local))
        with av.open(str(local)) as container:
            assert (
                f'"depth_model": "{"vda-small" if preset == "turbo" else "depthcrafter"}"'
                in container.metadata[TAG]
            )
    # VDA's processing size (input size 28 here) is not DepthCrafter's (multiples of 64)
    assert (made["turbo"]["depth_width"], made["turbo"]["depth_height"]) == (42, 28)
    assert (made["fast"]["depth_width"], made["fast"]["depth_height"]) == (64, 64)
    for preset, other in (("turbo", "fast"), ("reference", "turbo")):
        with pytest.raises(InvalidDepth) as caught:
            service.client.convert(CLIP, f"s3://{BUCKET}/out/mixed_{preset}.mp4", preset=preset,
                                   depth_uri=f"s3://{BUCKET}/depth/clip.{other}.mkv")  # fmt: skip
        assert caught.value.status == 422 and caught.value.code == "depth_mismatch"
        assert "depth model" in caught.value.message
        assert "Key" not in env["s3"].list_objects_v2(
            Bucket=BUCKET, Prefix=f"out/mixed_{preset}"
        )  # nothing written
    # and each is taken by its own model's preset
    result = service.client.convert(CLIP, f"s3://{BUCKET}/out/own.mp4", preset="turbo",
                                    depth_uri=f"s3://{BUCKET}/depth/clip.turbo.mkv")  # fmt: skip
    assert result["frames"] == 10 and "depth" not in result["timings"]
    assert service.healthy()


@pytest.mark.slow  # a server of its own (16 s): in the slow tier, which CI runs too
def test_a_turbo_only_endpoint_fetches_no_depthcrafter_file_and_refuses_other_presets(
    env: dict, tiny_weights: Path
) -> None:
    weights = env["tmp"] / "turbo-weights"
    with HubServer(tiny_weights, TOKEN) as hub:  # its own record of what was fetched
        svc = start_service(
            env["tmp"],
            {
                **moto_env(env),
                "HF_ENDPOINT": hub.url,
                "STEREOCRAFTER_WEIGHTS_MANIFEST": env["manifest"],
                "HF_TOKEN_ARN": env["arn"],
                "WEIGHTS_DIR": str(weights),
                "STEREOCRAFTER_PRESETS": "turbo",
            },
        )
        try:
            fetched = list(hub.downloads)
            asked = [r for r in hub.requests if "tencent/DepthCrafter" in r or "tencent%2FDepthCrafter" in r]
            assert asked == [] and not any(f.startswith("tencent/") for f in fetched), asked
            assert "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth" in fetched
            assert any(f.startswith("TencentARC/StereoCrafter/") for f in fetched)  # the inpainting
            assert not (weights / "tencent").exists()
            log = svc.log.read_text(errors="replace")  # the doctor's lines at start-up
            assert "model depthcrafter (tencent/DepthCrafter), research use only" in log
            assert "not loaded (no preset served uses it)" in log
            assert (
                "model vda-small (depth-anything/Video-Depth-Anything-Small), Apache-2.0: loaded for turbo"
                in log
            )

            result = svc.client.convert(CLIP, f"s3://{BUCKET}/out/turbo_only.mp4")  # the default: turbo
            assert result["preset"] == "turbo" and result["frames"] == 10
            for preset in ("reference", "fast"):
                with pytest.raises(BadRequest) as caught:
                    svc.client.convert(CLIP, f"s3://{BUCKET}/out/not_served.mp4", preset=preset)
                assert caught.value.status == 400 and caught.value.code == "preset_not_served"
                assert "serves the presets turbo" in caught.value.message and preset in caught.value.message
            listed = env["s3"].list_objects_v2(Bucket=BUCKET, Prefix="out/not_served")
            assert "Key" not in listed
            assert svc.healthy()
        finally:
            stop(svc)
