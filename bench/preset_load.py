"""What an endpoint downloads and loads for the presets it serves (``STEREOCRAFTER_PRESETS``).

For each set of presets:

- measured on tiny random weights (``make_tiny_weights``): the bytes ``download_weights`` fetches
  from a local Hub-compatible server (``stereocrafter/testing/hub.py``, on 127.0.0.1) into an empty
  ``WEIGHTS_DIR``, the time it takes, and the time ``load_stereo_pipeline`` then takes on the CPU;
- counted at real size: the bytes of the published files the same plan fetches, from the
  published architectures' parameter counts on the meta device (the diffusion models' files hold
  fp16 values, VDA-S's state dict float32; configs and the scheduler are a few KB and left out).
  Counted, not downloaded: nothing here reaches the Hub.

    python -m bench.preset_load        # ~30 s on 2 CPU cores
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from bench.gpu_depth import REAL_CLIP, REAL_UNET, REAL_VAE
from stereocrafter.catalog import models_of
from stereocrafter.models.thirdparty import quiet_known_messages
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.serving.weights import download_weights
from stereocrafter.testing.hub import HubServer
from stereocrafter.testing.weights import make_tiny_weights
from stereocrafter.weights.integrity import LOCK_NAME, read_lock

SETS = (("reference", "fast", "turbo"), ("reference", "fast"), ("fast",), ("turbo",))
TOKEN = "hf_bench"


def real_bytes() -> dict[str, int]:
    """Bytes of each model's published weight files, from its parameter count."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereocrafter.models.vda import SMALL, VideoDepthAnything

    def params(module: torch.nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    with torch.device("meta"):
        unet = params(UNetSpatioTemporalConditionModel(**REAL_UNET))  # both UNets: the same size
        svd = params(AutoencoderKLTemporalDecoder(**REAL_VAE))
        svd += params(CLIPVisionModelWithProjection(CLIPVisionConfig(**REAL_CLIP)))
        vda = VideoDepthAnything(SMALL)
        vda_values = params(vda) + sum(b.numel() for b in vda.buffers())  # the file holds the pe tables
    return {"depthcrafter": 2 * unet, "stereocrafter": 2 * unet, "svd": 2 * svd, "vda-small": 4 * vda_values}


def main() -> None:
    quiet_known_messages()
    real = real_bytes()
    print("real-size weight files, counted: " + ", ".join(f"{m} {b / 1e6:,.0f} MB" for m, b in real.items()))
    with tempfile.TemporaryDirectory() as tmp:
        tiny = make_tiny_weights(Path(tmp) / "tiny")
        print(f"\n{'presets served':28s}{'models':44s}{'real files':>12s}{'tiny fetched':>14s}"
              f"{'download':>10s}{'load':>8s}")  # fmt: skip
        with HubServer(tiny, TOKEN) as hub:
            for index, presets in enumerate(SETS):
                target = Path(tmp) / f"w{index}"
                started = time.perf_counter()
                failed = download_weights(target, TOKEN, endpoint=hub.url, presets=presets,
                                          manifest=read_lock(tiny))  # fmt: skip
                assert not failed, failed
                fetched = {p: p.stat().st_size for p in target.rglob("*")
                           if p.is_file() and ".stamps" not in p.parts and p.name != LOCK_NAME}  # fmt: skip
                downloaded = time.perf_counter() - started
                started = time.perf_counter()
                pipeline = load_stereo_pipeline(target, presets=presets)
                loaded = time.perf_counter() - started
                assert sorted(pipeline.depth_stages) == sorted(
                    m for m in models_of(presets) if m in ("depthcrafter", "vda-small")
                )
                models = models_of(presets)
                real_mb, tiny_mb = sum(real[m] for m in models) / 1e6, sum(fetched.values()) / 1e6
                print(f"{','.join(presets):28s}{' + '.join(models):44s}{real_mb:10,.0f} MB"
                      f"{tiny_mb:11.2f} MB{downloaded:9.2f} s{loaded:7.2f} s")  # fmt: skip
    depth_real = {m: real[m] / 1e6 for m in ("depthcrafter", "vda-small")}
    print(f"\ndepth weights a turbo-only endpoint fetches: {depth_real['vda-small']:,.0f} MB "
          f"(VDA-S) instead of {depth_real['depthcrafter']:,.0f} MB (DepthCrafter's UNet)")  # fmt: skip


if __name__ == "__main__":
    main()
