"""Benchmark forward_splat at 1920x1080: frames per second and peak memory, CPU (and CUDA if present).

    python -m bench.splat            # 1080p, batches of 4 and 10 frames
    python -m bench.splat --smoke    # tiny sizes, one pass: checks that the benchmark runs

Prints one line per (device, batch) with frames/s and peak memory; nothing is asserted.
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch

from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat


def inputs(batch: int, height: int, width: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand((batch, 3, height, width), generator=gen)
    # A smooth depth map (like a real one) rather than white noise.
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    depth = (0.5 + 0.4 * torch.sin(6 * x + 3 * y) * torch.cos(4 * y)).expand(batch, 1, height, width)
    return frames.to(device), disparity_from_depth(depth.contiguous(), 20.0).to(device)


def run(device: str, batch: int, height: int, width: int, repeats: int) -> None:
    frames, disparity = inputs(batch, height, width, device)
    forward_splat(frames, disparity)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(repeats):
        forward_splat(frames, disparity)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / repeats
    if device == "cuda":
        memory = f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
    else:
        memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (process)"
    print(
        f"forward_splat {device:4s} {width}x{height} batch {batch:2d}: "
        f"{batch / seconds:7.2f} frames/s ({seconds * 1000 / batch:7.1f} ms/frame), {memory}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one pass")
    args = parser.parse_args()
    height, width = (90, 160) if args.smoke else (1080, 1920)
    repeats = 1 if args.smoke else 3
    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}"
    )
    for batch in (2,) if args.smoke else (4, 10):
        run("cpu", batch, height, width, repeats)
    if torch.cuda.is_available():
        print(f"cuda device: {torch.cuda.get_device_name()}")
        for batch in (2,) if args.smoke else (10, 32):
            run("cuda", batch, height, width, repeats * 3)


if __name__ == "__main__":
    main()
