"""Video Depth Anything Small: TFLOP per output frame, counted on fake tensors, not measured.

Builds the real-size model on the meta device (no weights, no GPU), runs one 32-frame window at the
processing size of each source size (``models.vda_depth.processing_size``) under torch's FLOP counter,
and divides by the 22 frames a window adds in steady state (windows of 32, step 22). For comparison
with `fast`'s DepthCrafter stage in bench/flops.py (20.7 TFLOP/frame for its UNet alone).

    python -m bench.vda            # 1024x576 and 1920x1080
    python -m bench.vda --smoke    # a tiny architecture: checks the script itself
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from stereocrafter.models.vda import SMALL, VideoDepthAnything
from stereocrafter.models.vda_depth import STEP, WINDOW, processing_size
from stereocrafter.testing.weights import TINY_VDA


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a tiny architecture at a tiny size")
    args = parser.parse_args()
    arch = TINY_VDA if args.smoke else SMALL
    with torch.device("meta"):
        model = VideoDepthAnything(arch).eval()
    params = sum(p.numel() for p in model.parameters())
    name = "tiny" if args.smoke else "Small"
    print(f"VDA {name}: {params / 1e6:.2f} M parameters; windows of {WINDOW}, step {STEP}")
    sources = [(64, 48)] if args.smoke else [(1024, 576), (1920, 1080)]
    for width, height in sources:
        h, w = (28, 42) if args.smoke else processing_size(height, width)
        frames = torch.empty(1, WINDOW, 3, h, w, device="meta")
        started = time.perf_counter()
        with torch.no_grad(), FlopCounterMode(display=False) as flops:
            model(frames)
        per_window = flops.get_total_flops() / 1e12
        took = time.perf_counter() - started
        print(f"{width}x{height} -> {w}x{h}: {per_window:.3f} TFLOP per window, "
              f"{per_window / STEP:.4f} TFLOP per output frame (counted in {took:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    main()
