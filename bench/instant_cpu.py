"""Seconds per frame of the ``instant`` preset on this CPU, end to end (decode, VDA-S depth, splat,
weight-free fill, compose, encode), at 1024x576 with real-size Video Depth Anything Small weights.

The weights are random (``VideoDepthAnything(SMALL)``'s own initialisation, written in the
published checkpoint layout, marked as test weights so that the published digest is not asked of
them): the published file cannot be downloaded here, and the arithmetic per frame does not depend
on the values. The clip is synthetic (``testing.weights.write_sample_clip``).
Timings come from the converter's own per-stage clock (``ConversionResult.timings``).

    python -m bench.instant_cpu                  # 1024x576, 54 frames (2 VDA windows), minutes
    python -m bench.instant_cpu --smoke          # 256x144, 12 frames, the tiny VDA: checks the script
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.context import Job
from stereocrafter.jobs.local import convert_file
from stereocrafter.models.vda import CHECKPOINT, REPO, SMALL, VideoDepthAnything
from stereocrafter.models.vda_checkpoint import to_published
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.testing.weights import TINY_VDA, write_sample_clip
from stereocrafter.weights.manifest import TINY_WEIGHTS_MARKER


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--frames", type=int, default=54)
    args = parser.parse_args()
    width, height, frames = (256, 144, 12) if args.smoke else (1024, 576, args.frames)
    arch = TINY_VDA if args.smoke else SMALL
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "weights" / REPO).mkdir(parents=True)
        torch.manual_seed(0)
        torch.save(to_published(VideoDepthAnything(arch)), root / "weights" / REPO / CHECKPOINT)
        # random weights: marked as test weights (held to their own record, not the published digest)
        (root / "weights" / TINY_WEIGHTS_MARKER).write_text("random VDA-S weights of bench/instant_cpu.py\n")
        clip = write_sample_clip(root / "in.mp4", frames=frames, width=width, height=height)
        started = time.perf_counter()
        pipeline = load_stereo_pipeline(root / "weights", device="cpu", presets=("instant",))
        loaded = time.perf_counter() - started
        config = StereoConfig.from_preset("instant", **({"depth_input_size": 70} if args.smoke else {}))
        result = convert_file(pipeline, clip, root / "out.mp4", mode="sbs", job=Job(config=config))
    total = result.timings["total"]
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
          f"torch {torch.__version__}")  # fmt: skip
    print(f"instant at {width}x{height}, {frames} frames, {'tiny' if args.smoke else 'real-size'} random "
          f"VDA-S: loaded in {loaded:.1f} s")  # fmt: skip
    parts = ", ".join(f"{k} {v / frames:.3f}" for k, v in result.timings.items() if k != "total")
    print(f"seconds per frame: {total / frames:.3f} end to end ({parts})")
    print(f"frames per second: {frames / total:.2f}")


if __name__ == "__main__":
    main()
