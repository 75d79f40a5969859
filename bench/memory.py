"""Peak host memory of a whole 640x360 conversion (tiny random weights, CPU): 120 vs 480 frames.

Target: the 4x longer clip needs at most 1.5x the memory, i.e. memory is bounded by a window or
chunk, not by the clip (frames are decoded per chunk, depth is kept at depth resolution only).
Each length runs in a fresh process; diffusion steps are cut to 1 per stage because memory does not
depend on them and the tiny models would otherwise take most of an hour on 2 cores.

    python -m bench.memory            # 640x360, 120 and 480 frames
    python -m bench.memory --smoke    # 160x96, 12 and 48 frames
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    from stereocrafter.media.encode import VideoWriter

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with VideoWriter(path, fps=Fraction(30000, 1001), width=width, height=height) as writer:
        for t in range(frames):
            r = 0.5 + 0.4 * np.sin((x + 3 * t) / 29.0)
            g = 0.5 + 0.4 * np.cos((y - 2 * t) / 17.0)
            b = 0.5 + 0.4 * np.sin((x + y) / 41.0)
            writer.write((np.stack([r, g, b], -1) * 255).round().astype(np.uint8)[None])


def child(weights: str, clip: str, out: str) -> None:
    from stereocrafter.config import StereoConfig
    from stereocrafter.jobs.local import convert_file
    from stereocrafter.pipeline.run import StereoPipeline
    from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline
    from stereocrafter.stages.stereocrafter import load_pipeline as load_inpainting_pipeline

    pipeline = StereoPipeline(
        load_depth_pipeline(weights),
        load_inpainting_pipeline(weights),
        StereoConfig(depth_steps=1, inpaint_steps=1),
    )
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = convert_file(pipeline, clip, out, mode="sbs")
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps({"frames": result.num_frames, "seconds": seconds, "rss_loaded": loaded, "rss_peak": peak})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--frames", nargs=2, type=int, metavar=("SHORT", "LONG"), help="default 120 480")
    parser.add_argument("--child", nargs=3, metavar=("WEIGHTS", "CLIP", "OUT"))
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    from stereocrafter.testing.weights import make_tiny_weights

    width, height, lengths = (160, 96, (12, 48)) if args.smoke else (640, 360, (120, 480))
    if args.frames:
        lengths = tuple(args.frames)
    print(f"whole conversion, TINY RANDOM WEIGHTS, CPU, {width}x{height} -> sbs, 1 step per stage")
    with tempfile.TemporaryDirectory() as tmp:
        weights = make_tiny_weights(Path(tmp) / "weights")
        results = []
        for frames in lengths:
            clip = Path(tmp) / f"clip{frames}.mp4"
            make_clip(clip, frames, width, height)
            command = [
                sys.executable,
                __file__,
                "--child",
                str(weights),
                str(clip),
                str(Path(tmp) / "out.mp4"),
            ]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            results.append(result)
            print(
                f"{result['frames']:4d} frames: peak RSS {result['rss_peak']:.0f} MiB "
                f"(after loading {result['rss_loaded']:.0f} MiB), {result['seconds']:.0f} s"
            )
        short, long = results
        ratio = long["rss_peak"] / short["rss_peak"]
        print(f"{long['frames'] / short['frames']:.0f}x the frames -> x{ratio:.2f} peak RSS")


if __name__ == "__main__":
    main()
