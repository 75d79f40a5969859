"""libx264 with and without ``cpu-independent`` (``media.encoders.X264_PARAMS``): how many distinct files
the same frames encode to, and the encode speed at the real output size.

1. Determinism: a small 12-frame clip (8x8 blocks of noise under a drifting stripe, the kind of
   picture on which x264's AVX-512 mb-tree code varied) encoded ``--repeats`` times each way through
   ``VideoWriter``, counting distinct files by SHA-256. A CPU without AVX-512 never takes that code:
   there both ways give one file.
2. Speed: 24 frames of a 3840x1080 side-by-side picture (the 1080p sbs output), encoded each way
   three times, alternating; the median frames per second of each.

    python -m bench.encode_determinism           # 40 encodes each way, 3840x1080 speed
    python -m bench.encode_determinism --smoke   # 6 encodes each way, 960x270: checks the script
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stereocrafter.media import encoders
from stereocrafter.media.encode import VideoWriter


def blocks(count: int, width: int, height: int, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t, x = np.arange(count)[:, None, None], np.arange(width)[None, None, :]
    noise = np.kron(rng.normal(size=(count, height // 8, width // 8)), np.ones((8, 8)))
    grey = 128 + 60 * noise + 20 * np.sin((x + 5 * t) / 4)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def encode(frames: np.ndarray, path: Path, portable: bool) -> float:
    """Seconds to encode ``frames`` to ``path``; ``portable``: with x264's cpu-independent mode."""
    params = encoders.X264_PARAMS if portable else "cpu-independent=0"
    saved = encoders.X264_PARAMS
    encoders.X264_PARAMS = params
    try:
        started = time.perf_counter()
        with VideoWriter(path, fps=24, width=frames.shape[2], height=frames.shape[1], crf=18) as writer:
            writer.write(frames)
        return time.perf_counter() - started
    finally:
        encoders.X264_PARAMS = saved


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    repeats = 6 if args.smoke else args.repeats
    width, height = (960, 270) if args.smoke else (3840, 1080)
    print(f"CPU capability (torch): {torch.backends.cpu.get_cpu_capability()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.mp4"
        small = blocks(12, 192, 64)
        for portable in (False, True):
            digests = set()
            for _ in range(repeats):
                encode(small, out, portable)
                digests.add(hashlib.sha256(out.read_bytes()).hexdigest())
            label = "cpu-independent=1" if portable else "x264's own choice"
            print(f"{label:>20}: {len(digests)} distinct files in {repeats} encodes of the same 12 frames")
        big = blocks(24, width, height)
        seconds: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(3):
            for portable in (False, True):
                seconds[portable].append(encode(big, out, portable))
        for portable in (False, True):
            label = "cpu-independent=1" if portable else "x264's own choice"
            fps = 24 / statistics.median(seconds[portable])
            print(f"{label:>20}: {fps:.1f} frames/s at {width}x{height} (veryfast, CRF 18, median of 3)")


if __name__ == "__main__":
    main()
