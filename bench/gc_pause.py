"""How long a full garbage collection holds the GIL in a service process, before and after
``gc.freeze()``.

The service answers /ping on its event loop; anything that holds the GIL for long delays it. A job
ends with ``gc.collect()``, and a full collection walks every tracked object: the loaded models,
torch, diffusers, transformers and BentoML. This builds the real-size architectures (DepthCrafter
UNet, StereoCrafter UNet, SVD VAE, CLIP ViT-H/14) on the meta device (same Python objects as real
weights, no memory), imports what the service imports, then times ``gc.collect()`` as the service
ran it before (nothing frozen) and as it runs it now (after ``weights._freeze_heap``).

    python -m bench.gc_pause            # real-size architectures on the meta device (~1 min)
    python -m bench.gc_pause --smoke    # tiny configs: checks the script itself
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time

import torch

from bench.gpu_depth import REAL_CLIP, REAL_UNET, REAL_VAE


def build(smoke: bool) -> list[torch.nn.Module]:
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereocrafter.models.depth import DiffusersUNetSpatioTemporalConditionModelDepthCrafter
    from stereocrafter.testing.weights import tiny_unet_kwargs

    with torch.device("meta"):
        if smoke:
            depth_unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter(**tiny_unet_kwargs(8))
            inpaint_unet = UNetSpatioTemporalConditionModel(**tiny_unet_kwargs(9))
            vae = AutoencoderKLTemporalDecoder(**dict(REAL_VAE, block_out_channels=(32,) * 4))
            clip_config = dict(REAL_CLIP, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                               num_attention_heads=4, projection_dim=32)  # fmt: skip
        else:
            depth_unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter(**REAL_UNET)
            inpaint_unet = UNetSpatioTemporalConditionModel(**dict(REAL_UNET, in_channels=9))
            vae = AutoencoderKLTemporalDecoder(**REAL_VAE)
            clip_config = REAL_CLIP
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_config))
    return [depth_unet, inpaint_unet, vae, clip]


def timed_collections(repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny configs")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    import bentoml  # noqa: F401  (what the service process holds besides the models)
    import fastapi  # noqa: F401

    import stereocrafter.jobs.local  # noqa: F401
    from stereocrafter.serving.weights import _freeze_heap

    started = time.perf_counter()
    models = build(args.smoke)
    params = sum(p.numel() for m in models for p in m.parameters())
    kind = "tiny" if args.smoke else "real-size"
    print(f"{kind} models on the meta device: {params / 1e9:.2f} B parameters, built in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip

    tracked = len(gc.get_objects())
    before = timed_collections(args.repeats)
    _freeze_heap()
    after = timed_collections(args.repeats)
    frozen = gc.get_freeze_count()
    print(f"objects tracked by the collector: {tracked:,}")
    print(f"full gc.collect(), nothing frozen:   median {statistics.median(before) * 1e3:7.1f} ms, "
          f"max {max(before) * 1e3:7.1f} ms")  # fmt: skip
    print(f"full gc.collect(), after gc.freeze(): median {statistics.median(after) * 1e3:7.1f} ms, "
          f"max {max(after) * 1e3:7.1f} ms ({frozen:,} objects frozen)")  # fmt: skip
    del models


if __name__ == "__main__":
    main()
