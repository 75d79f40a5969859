"""The whole conversion at real size on a GPU: published architectures, random weights, fp16.

46 frames of 1024x576 (two inpainting chunks of 23, one depth window) through StereoPipeline with
the reference settings (depth: 8 steps, CFG 1.2; inpainting: 8 steps, CFG 1.01, one tile).
Prints seconds per frame for each stage and the peak GPU memory. Random weights: the speed and
memory are real, the pictures are not.

    python bench/gpu_pipeline.py            # needs CUDA
    python bench/gpu_pipeline.py --smoke    # tiny configs on the CPU: checks the script itself
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_depth import REAL_UNET, build, run_setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny configs on the CPU")
    parser.add_argument("--frames", type=int, default=46)
    args = parser.parse_args()
    from diffusers import UNetSpatioTemporalConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0

    from stereocrafter.inpainting import StereoInpaintingPipeline
    from stereocrafter.pipeline import StereoConfig, StereoPipeline
    from stereocrafter.testing import tiny_unet_kwargs

    device, dtype, frames, (height, width) = run_setup(args.smoke, args.frames)

    start = time.perf_counter()
    depth, _ = build(device, dtype, args.smoke)
    with torch.device(device):
        kwargs = tiny_unet_kwargs(9) if args.smoke else dict(REAL_UNET, in_channels=9)
        unet = UNetSpatioTemporalConditionModel(**kwargs).to(dtype).eval()
    unet.set_attn_processor(AttnProcessor2_0())
    inpainting = StereoInpaintingPipeline(
        unet, depth.vae, depth.image_encoder, depth.scheduler, depth.image_mean, depth.image_std
    )
    stereo = StereoPipeline(depth, inpainting, StereoConfig())
    print(
        f"built random {'tiny' if args.smoke else 'real-size'} models in {time.perf_counter() - start:.1f} s"
    )

    rng = np.random.default_rng(0)
    video = (rng.random((frames, height, width, 3)) * 255).astype(np.uint8)

    def open_frames() -> Iterator[np.ndarray]:
        return iter([video[i : i + 16] for i in range(0, frames, 16)])

    produced: list[int] = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = stereo.run(
        open_frames,
        lambda chunk: produced.append(len(chunk)),
        num_frames=frames,
        width=width,
        height=height,
        mode="sbs",
    )
    total = time.perf_counter() - start
    print(f"{frames} frames {width}x{height} -> {result.width}x{result.height} sbs in {total:.1f} s "
          f"({total / frames:.2f} s/frame)")  # fmt: skip
    for stage, seconds in result.timings.items():
        print(f"  {stage:15s} {seconds:7.1f} s  {seconds / frames:6.3f} s/frame")
    if device.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    assert sum(produced) == frames


if __name__ == "__main__":
    main()
