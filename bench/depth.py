"""DepthCrafter stage on tiny random weights (CPU): seconds per frame and peak RSS, 32 vs 128 frames.

The point is the memory profile: frames are read, encoded and decoded window by window, so the
peak should follow the window (70 frames), not the clip. Each clip length runs in a fresh process
so that peak RSS figures do not mix. Tiny weights make the numbers meaningless as model speed;
they measure the pipeline's own overhead and memory behaviour.

    python -m bench.depth            # 128x192, 32 and 128 frames, reference defaults
    python -m bench.depth --smoke    # 64x96, 8 and 16 frames, 1 step
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


class SyntheticFrames:
    """A FrameSource that renders frames on request (nothing clip-sized is ever held)."""

    def __init__(self, num_frames: int, height: int, width: int) -> None:
        self.num_frames, self.height, self.width = num_frames, height, width
        self.y = torch.linspace(0, 1, height).view(1, 1, height, 1)
        self.x = torch.linspace(0, 1, width).view(1, 1, 1, width)

    def __len__(self) -> int:
        return self.num_frames

    def __getitem__(self, index: slice) -> torch.Tensor:
        t = torch.arange(index.start, min(index.stop, self.num_frames), dtype=torch.float32).view(-1, 1, 1, 1)
        base = 0.5 + 0.4 * torch.sin(6 * self.x + 4 * self.y + 0.2 * t)
        return torch.cat([base, base.flip(-1), 1 - base], dim=1).clamp(0, 1)


def child(weights: str, frames: int, height: int, width: int, steps: int) -> None:
    from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline

    pipe = load_depth_pipeline(weights, device="cpu")
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    produced = 0
    for _, depth in pipe.iter_depth(SyntheticFrames(frames, height, width), num_inference_steps=steps):
        produced += depth.shape[0]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"frames": produced, "seconds": seconds, "rss_loaded": rss_loaded, "rss_peak": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--child", nargs=5, metavar=("WEIGHTS", "FRAMES", "H", "W", "STEPS"))
    args = parser.parse_args()
    if args.child:
        weights, frames, height, width, steps = args.child
        child(weights, int(frames), int(height), int(width), int(steps))
        return

    from stereocrafter.testing.weights import make_tiny_weights

    height, width, lengths, steps = (64, 96, (8, 16), 1) if args.smoke else (128, 192, (32, 128), 8)
    threads = torch.get_num_threads()
    print(f"DepthCrafter stage, TINY RANDOM WEIGHTS, CPU ({threads} threads), {width}x{height}, "
          f"{steps} steps, CFG 1.2, window 70 / overlap 25")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        weights = make_tiny_weights(Path(tmp) / "weights")
        results = []
        for frames in lengths:
            command = [
                sys.executable,
                __file__,
                "--child",
                str(weights),
                str(frames),
                str(height),
                str(width),
                str(steps),
            ]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(
                f"{result['frames']:4d} frames: {result['seconds'] / result['frames']:.3f} s/frame, "
                f"peak RSS {result['rss_peak']:.0f} MiB (after loading: {result['rss_loaded']:.0f} MiB)"
            )
        short, long = results
        growth = (long["rss_peak"] - long["rss_loaded"]) / max(short["rss_peak"] - short["rss_loaded"], 1.0)
        ratio = long["rss_peak"] / short["rss_peak"]
        print(
            f"{long['frames'] // short['frames']}x the frames: peak RSS x{ratio:.2f} "
            f"(working memory above the loaded models x{growth:.2f})"
        )


if __name__ == "__main__":
    main()
