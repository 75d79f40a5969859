"""DepthCrafter stage at real size on a GPU: the published architectures with random weights.

Builds the UNet (reference notes §1.4), the SVD VAE and the CLIP ViT-H/14 image encoder (§3) with
random weights directly on the GPU in fp16 (VAE encoder fp32, as loading does), then runs the
depth pipeline on 70 frames of 1024x576 (one window) with StereoCrafter's settings: 8 steps,
CFG 1.2 (two UNet passes per step). Prints ms per UNet evaluation (and per frame), the stage's
total time and the peak GPU memory. Random weights: speed and memory are real, the depth is not.

    python -m bench.gpu_depth            # needs CUDA; about a minute on an H100
    python -m bench.gpu_depth --smoke    # tiny configs on the CPU: checks the script itself

Published anchor: DepthCrafter v1.0.1 reports 465.84 ms/frame at 1024x576 on an A100 with its own
defaults (5 steps, no CFG, window 110); StereoCrafter's settings do about 3x the UNet work.
"""

from __future__ import annotations

import argparse
import time

import torch

REAL_UNET = {
    "sample_size": 96,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ("CrossAttnDownBlockSpatioTemporal",) * 3 + ("DownBlockSpatioTemporal",),
    "up_block_types": ("UpBlockSpatioTemporal",) + ("CrossAttnUpBlockSpatioTemporal",) * 3,
    "block_out_channels": (320, 640, 1280, 1280),
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 768,
    "layers_per_block": 2,
    "cross_attention_dim": 1024,
    "transformer_layers_per_block": 1,
    "num_attention_heads": (5, 10, 20, 20),
    "num_frames": 25,
}
REAL_VAE = {
    "block_out_channels": (128, 256, 512, 512),
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "sample_size": 768,
    "scaling_factor": 0.18215,
    "force_upcast": True,
}
REAL_CLIP = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "projection_dim": 1024,
    "layer_norm_eps": 1e-5,
    "hidden_act": "gelu",
}


def build(device: torch.device, dtype: torch.dtype, smoke: bool):
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from diffusers.models.attention_processor import AttnProcessor2_0
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereocrafter.models.depth import (
        DepthCrafterPipeline,
        DiffusersUNetSpatioTemporalConditionModelDepthCrafter,
    )
    from stereocrafter.stages.components import prepare_vae
    from stereocrafter.testing.weights import SVD_PREPROCESSOR_CONFIG, SVD_SCHEDULER_CONFIG, tiny_unet_kwargs

    unet_kwargs = tiny_unet_kwargs(8) if smoke else REAL_UNET
    vae_kwargs = (
        dict(REAL_VAE, block_out_channels=(32, 32, 32, 32), layers_per_block=1) if smoke else REAL_VAE
    )
    clip_kwargs = (
        dict(REAL_CLIP, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
             patch_size=32, projection_dim=32)
        if smoke else REAL_CLIP
    )  # fmt: skip
    torch.manual_seed(0)
    with torch.device(device):  # initialise on the GPU: seconds instead of minutes on the CPU
        unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter(**unet_kwargs).to(dtype)
        vae = AutoencoderKLTemporalDecoder(**vae_kwargs).to(dtype)
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**clip_kwargs, attn_implementation="sdpa")).to(
            dtype
        )
    unet.set_attn_processor(AttnProcessor2_0())
    prepare_vae(vae, dtype)
    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)  # ignores the unused keys
    mean, std = SVD_PREPROCESSOR_CONFIG["image_mean"], SVD_PREPROCESSOR_CONFIG["image_std"]
    pipe = DepthCrafterPipeline(unet.eval(), vae.eval(), clip.eval(), scheduler, tuple(mean), tuple(std))  # type: ignore[arg-type]
    params = sum(p.numel() for p in unet.parameters())
    return pipe, params


def run_setup(smoke: bool, frames: int) -> tuple[torch.device, torch.dtype, int, tuple[int, int]]:
    """(device, dtype, frames, (height, width)): tiny CPU sizes for --smoke, else CUDA fp16 1024x576."""
    if smoke:
        return torch.device("cpu"), torch.float32, 8, (64, 96)
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device (use --smoke to check the script on a CPU)")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")
    return torch.device("cuda"), torch.float16, frames, (576, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny configs on the CPU")
    parser.add_argument("--frames", type=int, default=70)
    args = parser.parse_args()
    device, dtype, frames, (height, width) = run_setup(args.smoke, args.frames)

    start = time.perf_counter()
    pipe, params = build(device, dtype, args.smoke)
    kind = "tiny" if args.smoke else "real-size"
    print(f"built random {kind} models in {time.perf_counter() - start:.1f} s "
          f"(UNet {params / 1e9:.3f} B parameters)")  # fmt: skip

    timings: list[float] = []

    def synchronize() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def before(module: torch.nn.Module, args: tuple) -> None:
        synchronize()
        timings.append(-time.perf_counter())

    def after(module: torch.nn.Module, args: tuple, output: object) -> None:
        synchronize()
        timings[-1] += time.perf_counter()

    pipe.unet.register_forward_pre_hook(before)
    pipe.unet.register_forward_hook(after)
    video = torch.rand((frames, 3, height, width), generator=torch.Generator().manual_seed(0))
    pipe(video[:2], num_inference_steps=1)  # warm-up (kernels, allocator)
    timings.clear()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    synchronize()
    start = time.perf_counter()
    depth = pipe(video)  # StereoCrafter's settings: 8 steps, CFG 1.2, window 70 / overlap 25
    synchronize()
    total = time.perf_counter() - start
    unet_ms = 1000 * sum(timings) / len(timings)
    print(f"{frames} frames {width}x{height}: {len(timings)} UNet evaluations, {unet_ms:.0f} ms each "
          f"({unet_ms / frames:.1f} ms per frame per evaluation)")  # fmt: skip
    print(f"stage total {total:.1f} s = {1000 * total / frames:.0f} ms/frame "
          f"(UNet {100 * sum(timings) / total:.0f}% of it); output {tuple(depth.shape)}")  # fmt: skip
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
