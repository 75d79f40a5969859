"""What a stored depth costs: bytes per frame and per minute, and write/read time, of the depth
task's file (FFV1 16-bit grey in Matroska, ``stereocrafter.media.depthstore``) at the depth stage's size
for a 1080p source (1024 x 576).

The real DepthCrafter weights cannot be downloaded here, so three synthetic depths bound the size:
- ``planes``: the known-depth scene of the alignment tests (planes and a slanted floor, moving):
  the smooth end, what a clean depth map costs;
- ``planes+grain``: the same plus Gaussian grain of 0.3 % of the range on every pixel (about 200
  of the 65,535 levels): a rough stand-in for the fine texture a diffusion depth map has;
- ``noise``: uniform random levels: the worst case, incompressible.

    python -m bench.depth_store            # 48 frames per case
    python -m bench.depth_store --smoke    # 4 frames at 256 x 144 (CI)
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from stereocrafter.models.thirdparty import quiet_known_messages

quiet_known_messages()  # before stereocrafter.testing.scenes imports diffusers
from stereocrafter.media.depthstore import DepthShape, read_depth, write_depth  # noqa: E402
from stereocrafter.testing.scenes import true_depth  # noqa: E402


def cases(frames: int, height: int, width: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    planes = np.stack([true_depth(t, frames, height, width, None) for t in range(frames)])
    grain = planes + rng.normal(0, 0.003 * (planes.max() - planes.min()), planes.shape)
    noise = rng.uniform(0, 1, planes.shape)
    return {
        name: torch.from_numpy(d.astype(np.float32))[:, None]
        for name, d in (("planes", planes), ("planes+grain", grain), ("noise", noise))
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    frames, height, width = (4, 144, 256) if args.smoke else (48, 576, 1024)
    print(
        f"stored depth at {width}x{height}, {frames} frames a case (raw 16-bit: {2 * width * height} B/frame)"
    )
    print(f"{'case':14s} {'KB/frame':>9s} {'of raw':>7s} {'MB/min@24':>10s} {'MB/min@30':>10s} "
          f"{'write ms/f':>10s} {'read ms/f':>9s} {'max error':>10s}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, depth in cases(frames, height, width).items():
            path = Path(tmp) / f"{name}.mkv"
            started = time.perf_counter()
            write_depth(path, depth, fps=Fraction(24), source_width=1920, source_height=1080)
            written = time.perf_counter() - started
            started = time.perf_counter()
            stored = read_depth(path, DepthShape(frames, 1920, 1080, width, height))
            read = time.perf_counter() - started
            error = float((stored.depth - depth).abs().max() / (depth.max() - depth.min()))
            per_frame = path.stat().st_size / frames
            print(
                f"{name:14s} {per_frame / 1e3:9.1f} {per_frame / (2 * width * height):7.1%} "
                f"{per_frame * 24 * 60 / 1e6:10.1f} {per_frame * 30 * 60 / 1e6:10.1f} "
                f"{1e3 * written / frames:10.1f} {1e3 * read / frames:9.1f} {error:10.2e}"
            )
    print("max error: of the depth range (16-bit step / 2 = 7.6e-06)")


if __name__ == "__main__":
    main()
