"""Every preset end to end on a GPU at real size: s/frame per stage, peak memory, achieved TFLOP/s.

The published architectures with random weights in fp16, the service's dtype on CUDA (the VAE
encoder in fp32, as loading keeps it; fp16 and bf16 share the tensor cores' peak; Video Depth
Anything Small in float32 under fp16 autocast, as loading keeps and runs it), built once on the GPU
and run the way the service runs them (``loading.prepare_unet``: split attention; feed-forward
chunking where a call would not fit, ``models.attention``). For each (preset, size) it converts
``--frames`` random frames to sbs through ``StereoPipeline`` (no video encoding: the sink only
counts frames) and records per stage the seconds per frame, the peak GPU memory, and for the UNets
the achieved
TFLOP/s: the FLOPs of every UNet call, counted on the meta device for that call's exact shape
(``bench/flops.py``'s counter), over the time the calls took (CUDA-synchronised hooks), and that
as a share of the card's dense bf16 peak. Each (preset, size) is guarded: an OOM or any other
failure is recorded and the next one runs. Rows go to ``--out`` (JSON lines) and stdout.

    python -m bench.gpu_presets --out $OUT/results.jsonl     # needs CUDA; ~3-4 min on an H100
    python -m bench.gpu_presets --smoke                      # tiny configs on the CPU

Random weights: the speed and memory are real, the pictures are not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.gpu_depth import REAL_CLIP, REAL_UNET, REAL_VAE

# Dense bf16/fp16 tensor-core peaks (TFLOP/s) from NVIDIA's data sheets, matched on the device name.
BF16_PEAK = {
    "H200": 989.4,
    "H100 NVL": 835.0,
    "H100 PCIe": 756.0,
    "H100": 989.4,  # SXM
    "A100": 312.0,
    "L40S": 362.1,
    "A10G": 70.0,
    "L4": 121.0,
}


def bf16_peak(name: str) -> float | None:
    return next((peak for key, peak in BF16_PEAK.items() if key in name), None)


def build(
    device: torch.device,
    dtype: torch.dtype,
    smoke: bool,
    depth_models: tuple[str, ...] = ("depthcrafter", "vda-small"),
    inpainting: bool = True,
) -> tuple[Any, Any, Any]:
    """DepthCrafter (or None), VDA-S (or None) and the inpainting pipeline (or None: ``inpainting``
    false), random weights: only the models named (``bench/gpu_rows.py`` builds one preset's
    models, as a one-preset endpoint)."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereocrafter.models.depth import (
        DepthCrafterPipeline,
        DiffusersUNetSpatioTemporalConditionModelDepthCrafter,
    )
    from stereocrafter.models.inpainting import StereoInpaintingPipeline
    from stereocrafter.models.vda import SMALL, VideoDepthAnything
    from stereocrafter.models.vda_depth import VdaDepthPipeline
    from stereocrafter.stages.components import prepare_unet, prepare_vae
    from stereocrafter.testing.weights import (
        SVD_PREPROCESSOR_CONFIG,
        SVD_SCHEDULER_CONFIG,
        TINY_VDA,
        tiny_unet_kwargs,
    )

    torch.manual_seed(0)
    small_clip = dict(REAL_CLIP, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                      num_attention_heads=4, patch_size=32, projection_dim=32)  # fmt: skip
    with torch.device(device):  # initialised on the GPU: seconds, not minutes
        depth_unet = (
            DiffusersUNetSpatioTemporalConditionModelDepthCrafter(
                **(tiny_unet_kwargs(8) if smoke else REAL_UNET)
            ).to(dtype)
            if "depthcrafter" in depth_models
            else None
        )
        if not inpainting and "depthcrafter" not in depth_models:  # no SVD model at all
            vda_only = VideoDepthAnything(TINY_VDA if smoke else SMALL).eval().requires_grad_(False)
            return None, VdaDepthPipeline(vda_only), None
        inpaint_unet = UNetSpatioTemporalConditionModel(
            **(tiny_unet_kwargs(9) if smoke else dict(REAL_UNET, in_channels=9))
        ).to(dtype)
        vae_kwargs = dict(REAL_VAE, block_out_channels=(32,) * 4, layers_per_block=1) if smoke else REAL_VAE
        vae = AutoencoderKLTemporalDecoder(**vae_kwargs).to(dtype)
        clip_config = CLIPVisionConfig(**(small_clip if smoke else REAL_CLIP), attn_implementation="sdpa")
        clip = CLIPVisionModelWithProjection(clip_config).to(dtype)
        vda_model = (
            VideoDepthAnything(TINY_VDA if smoke else SMALL).eval().requires_grad_(False)
            if "vda-small" in depth_models
            else None
        )
    for unet in (depth_unet, inpaint_unet):
        if unet is not None:
            prepare_unet(unet)
    prepare_vae(vae, dtype)
    scheduler = EulerDiscreteScheduler.from_config(SVD_SCHEDULER_CONFIG)
    mean, std = tuple(SVD_PREPROCESSOR_CONFIG["image_mean"]), tuple(SVD_PREPROCESSOR_CONFIG["image_std"])
    parts = {"vae": vae.eval(), "image_encoder": clip.eval(), "scheduler": scheduler}
    depth = (
        DepthCrafterPipeline(unet=depth_unet.eval(), image_mean=mean, image_std=std, **parts)
        if depth_unet is not None
        else None
    )
    stage2 = StereoInpaintingPipeline(unet=inpaint_unet.eval(), image_mean=mean, image_std=std, **parts)
    return (
        depth,
        VdaDepthPipeline(vda_model) if vda_model is not None else None,
        stage2 if inpainting else None,
    )


class UNetClock:
    """Times every call of a UNet (CUDA-synchronised) and remembers its input shapes."""

    def __init__(self, unet: torch.nn.Module, device: torch.device) -> None:
        self.device, self.calls = device, []  # (sample shape, context shape, seconds)
        self._started = 0.0
        self._handles = [
            unet.register_forward_pre_hook(self._before, with_kwargs=True),
            unet.register_forward_hook(self._after),
        ]

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def _before(self, module: Any, args: tuple, kwargs: dict) -> None:
        self._sync()
        context = kwargs.get("encoder_hidden_states")  # (none for VDA)
        self._shape = (tuple(args[0].shape), tuple(context.shape) if context is not None else ())
        self._started = time.perf_counter()

    def _after(self, module: Any, args: tuple, output: Any) -> None:
        self._sync()
        self.calls.append((*self._shape, time.perf_counter() - self._started))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


class MetaCounter:
    """FLOPs of one UNet call of a given shape, counted once on meta-device twins of the UNets."""

    def __init__(self, smoke: bool) -> None:
        from diffusers import UNetSpatioTemporalConditionModel

        from bench import flops
        from stereocrafter.models.depth import DiffusersUNetSpatioTemporalConditionModelDepthCrafter
        from stereocrafter.models.vda import SMALL, VideoDepthAnything
        from stereocrafter.testing.weights import TINY_VDA, tiny_unet_kwargs

        self.flops = flops
        with torch.device("meta"):
            self.unets = {
                "depth": DiffusersUNetSpatioTemporalConditionModelDepthCrafter(
                    **(tiny_unet_kwargs(8) if smoke else REAL_UNET)
                ),
                "inpainting": UNetSpatioTemporalConditionModel(
                    **(tiny_unet_kwargs(9) if smoke else dict(REAL_UNET, in_channels=9))
                ),
                "vda": VideoDepthAnything(TINY_VDA if smoke else SMALL),
            }
        for unet in self.unets.values():
            unet.to("meta").to(torch.bfloat16).eval()
        self.cache: dict[tuple, float] = {}

    def __call__(self, stage: str, sample: tuple, context: tuple) -> float:
        key = (stage, sample, context)
        if key not in self.cache and stage == "vda":
            frames = torch.empty(sample, device="meta", dtype=torch.bfloat16)
            self.cache[key] = self.flops.count(lambda: self.unets["vda"](frames)).flops
        if key not in self.cache:
            unet = self.unets[stage]
            x = torch.empty(sample, device="meta", dtype=torch.bfloat16)
            c = torch.empty(context, device="meta", dtype=torch.bfloat16)
            ids = torch.empty(sample[0], 3, device="meta", dtype=torch.bfloat16)
            t = torch.empty((), device="meta")
            kwargs = {"encoder_hidden_states": c, "added_time_ids": ids, "return_dict": False}
            functional = torch.nn.functional
            real_sdpa = functional.scaled_dot_product_attention
            functional.scaled_dot_product_attention = self.flops.efficient_sdpa  # only while counting
            try:
                self.cache[key] = self.flops.count(lambda: unet(x, t, **kwargs)).flops
            finally:
                functional.scaled_dot_product_attention = real_sdpa
        return self.cache[key]


def run_one(depth: Any, vda: Any, inpainting: Any, preset: str, width: int, height: int, frames: int,
            device: torch.device, counter: MetaCounter, peak: float | None,
            smoke: bool = False) -> dict[str, Any]:  # fmt: skip
    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.run import StereoPipeline
    from stereocrafter.pipeline.types import RunHooks

    small = {"depth_input_size": 28} if smoke else {}  # (the tiny VDA at a tiny size)
    pipeline = StereoPipeline([depth, vda], inpainting, StereoConfig.from_preset(preset, **small))
    video = (np.random.default_rng(0).random((frames, height, width, 3)) * 255).astype(np.uint8)

    def open_frames() -> Iterator[np.ndarray]:
        return iter([video[i : i + 16] for i in range(0, frames, 16)])

    clocks = {
        "depth": UNetClock(depth.unet, device),
        "vda": UNetClock(vda.model, device),
        "inpainting": UNetClock(inpainting.unet, device),
    }
    produced: list[int] = []
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    try:
        # As the service runs a job: under a deadline (checked at every UNet call) and with every
        # VAE decode checked for non-finite values (fp16 overflow at 1080p is what to look for).
        from stereocrafter.guard import Deadline

        deadline = Deadline(300.0, why=" (bench)")
        result = pipeline.run(open_frames, lambda chunk: produced.append(len(chunk)), num_frames=frames,
                              width=width, height=height, mode="sbs",
                              hooks=RunHooks(stop=deadline))  # fmt: skip
    finally:
        for clock in clocks.values():
            clock.remove()
    total = time.perf_counter() - started
    assert sum(produced) == frames
    row: dict[str, Any] = {
        "preset": preset,
        "size": f"{width}x{height}",
        "frames": frames,
        "s_per_frame": round(total / frames, 4),
        "stages_s_per_frame": {k: round(v / frames, 4) for k, v in result.timings.items()},
    }
    if device.type == "cuda":
        row["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    for stage, clock in clocks.items():
        if not clock.calls:
            continue  # (the depth model this preset does not run)
        seconds = sum(c[2] for c in clock.calls)
        tflop = sum(counter(stage, sample, context) for sample, context, _ in clock.calls) / 1e12
        achieved = tflop / seconds if seconds else 0.0
        row[f"{stage}_unet" if stage != "vda" else "vda_model"] = {
            "calls": len(clock.calls),
            "seconds": round(seconds, 3),
            "tflop": round(tflop, 4),
            "tflop_per_s": round(achieved, 2),
            "share_of_bf16_peak": round(achieved / peak, 3) if peak else None,
        }
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny configs on the CPU")
    parser.add_argument("--frames", type=int, default=46)
    parser.add_argument("--presets", default="turbo,fast,reference")
    parser.add_argument("--sizes", default="1024x576,1920x1080")
    parser.add_argument("--out", type=Path, help="append the rows here (JSON lines)")
    args = parser.parse_args()
    if args.smoke:
        device, dtype, frames, sizes = torch.device("cpu"), torch.float32, 8, [(96, 64)]
        name, peak = "cpu (smoke)", None
    else:
        if not torch.cuda.is_available():
            raise SystemExit("needs a CUDA device (use --smoke to check the script on a CPU)")
        device, dtype, frames = torch.device("cuda"), torch.float16, args.frames  # as loading.default_dtype
        sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
        name = torch.cuda.get_device_name()
        peak = bf16_peak(name)
    print(f"device: {name}, torch {torch.__version__}, bf16 peak {peak} TFLOP/s", flush=True)
    started = time.perf_counter()
    depth, vda, inpainting = build(device, dtype, args.smoke)
    counter = MetaCounter(args.smoke)
    kind = "tiny" if args.smoke else "real-size"
    print(f"built random {kind} models in {time.perf_counter() - started:.0f} s", flush=True)
    started = time.perf_counter()  # warm-up (kernels, allocator, cuDNN plans): not recorded
    for preset in ("fast", "turbo"):
        run_one(depth, vda, inpainting, preset, *sizes[0], 8, device, counter, peak, args.smoke)
    print(f"warm-up in {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    for width, height in sizes:
        for preset in args.presets.split(","):
            try:
                row = run_one(depth, vda, inpainting, preset, width, height, frames, device, counter, peak,
                              args.smoke)  # fmt: skip
            except Exception as err:  # e.g. torch.cuda.OutOfMemoryError: record it, go on
                row = {
                    "preset": preset,
                    "size": f"{width}x{height}",
                    "error": f"{type(err).__name__}: {err}"[:300],
                }
                traceback.print_exc(limit=2)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            row["device"] = name
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.out:
                with args.out.open("a") as out:
                    out.write(json.dumps(row) + "\n")
    for width, height in sizes:
        by = {r["preset"]: r for r in rows if r["size"] == f"{width}x{height}" and "error" not in r}
        for fast, slow in (("fast", "reference"), ("turbo", "fast"), ("turbo", "reference")):
            if fast in by and slow in by:
                speedup = by[slow]["s_per_frame"] / by[fast]["s_per_frame"]
                print(f"{width}x{height}: {fast} is {speedup:.2f}x faster than {slow} end to end")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
