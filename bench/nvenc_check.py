"""Which encoder ``auto`` picks on this machine, and what each usable one costs on a side-by-side
1080p picture (3840x1080, the turbo/fast output of a 1080p source).

Prints ``doctor``'s NVENC line, the ``auto`` choice (with the fallback's reason where NVENC does not
open: A100, H100 and H200 have no NVENC), then for libx264 (veryfast, CRF 18) and every NVENC
encoder that opens: milliseconds per frame, the file size and the PSNR of a round trip on a smooth
panning picture. Run by bench/gpu_check.sh; on a CPU machine it measures libx264 alone.

    python bench/nvenc_check.py            # 3840x1080, 48 frames
    python bench/nvenc_check.py --smoke    # 640x180, 8 frames
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.encoders import (
    LIBX264,
    NVENC_CODECS,
    Encoder,
    choose_encoder,
    nvenc_lines,
    nvenc_problem,
)
from stereocrafter.media.video_io import iter_frames, probe


def panning_frames(count: int, width: int, height: int) -> np.ndarray:
    """Smooth colour fields and soft blocks moving 3 px a frame; the right half is the left half
    shifted by 6 px (a stereo pair's look), as uint8 RGB."""
    half = width // 2
    y, x = np.mgrid[0:height, 0:half].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 97 + y / 53), 128 + 90 * np.cos(x / 71 - y / 41),
                     128 + 80 * np.sin((x + y) / 33)], axis=-1)  # fmt: skip
    frames = []
    for t in range(count):
        left = np.clip(np.roll(base, 3 * t, axis=1), 0, 255).astype(np.uint8)
        frames.append(np.concatenate([left, np.roll(left, -6, axis=1)], axis=1))
    return np.stack(frames)


def measure(encoder: Encoder, frames: np.ndarray, path: Path) -> tuple[float, int, float]:
    count, height, width, _ = frames.shape
    started = time.perf_counter()
    with VideoWriter(path, fps=24, width=width, height=height, encoder=encoder) as writer:
        for start in range(0, count, 16):
            writer.write(frames[start : start + 16])
    ms = (time.perf_counter() - started) * 1000 / count
    assert probe(path).num_frames == count
    decoded = np.concatenate(list(iter_frames(path, 16))).astype(np.float64)
    mse = float(np.mean((decoded - frames) ** 2))
    return ms, path.stat().st_size, 10 * np.log10(255**2 / max(mse, 1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    width, height, count = (640, 180, 8) if args.smoke else (3840, 1080, 48)
    for line in nvenc_lines():
        print(line)
    print(f"auto -> {choose_encoder('auto').label()}")
    candidates = [LIBX264] + [Encoder(c, c) for c in NVENC_CODECS if nvenc_problem(c) is None]
    frames = panning_frames(count, width, height)
    print(f"{width}x{height}, {count} frames, quality 18 (CRF for libx264, CQ for NVENC)")
    with tempfile.TemporaryDirectory() as folder:
        for encoder in candidates:
            ms, size, quality = measure(encoder, frames, Path(folder) / f"{encoder.codec}.mp4")
            print(f"  {encoder.codec:11s} preset {encoder.preset:9s}{ms:8.1f} ms/frame "
                  f"{size / count / 1024:8.1f} KiB/frame  PSNR {quality:5.2f} dB")  # fmt: skip


if __name__ == "__main__":
    main()
