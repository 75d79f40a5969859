"""Which encoder ``auto`` picks on this machine, and what each usable one costs on a side-by-side
1080p picture (3840x1080, the turbo/fast output of a 1080p source).

Prints ``doctor``'s NVENC line, the ``auto`` choice (with the fallback's reason where NVENC does not
open: A100, H100 and H200 have no NVENC), then for libx264 (veryfast at CRF 18, the default;
x264's own default medium at CRF 18; veryfast at CRF 16) and every NVENC encoder that opens:
milliseconds per frame, the file size and the PSNR of a round trip on a smooth panning picture
(why veryfast: README, "The host and the video encoder"). Run by bench/gpu_check.sh.

    python -m bench.nvenc_check            # 3840x1080, 48 frames
    python -m bench.nvenc_check --smoke    # 640x180, 8 frames
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

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
    """Smooth colour fields and soft 8 px blocks (some texture for the encoder to spend bits on)
    moving 3 px a frame; the right half is the left half shifted by 6 px (a stereo pair's look),
    as uint8 RGB."""
    half = width // 2
    y, x = np.mgrid[0:height, 0:half].astype(np.float32)
    base = np.stack([128 + 100 * np.sin(x / 97 + y / 53), 128 + 90 * np.cos(x / 71 - y / 41),
                     128 + 80 * np.sin((x + y) / 33)], axis=-1)  # fmt: skip
    blocks = np.kron(np.random.default_rng(0).random((height // 8 + 1, half // 8 + 1, 3)), np.ones((8, 8, 1)))
    soft = np.zeros_like(base)
    for dy in range(-2, 3):  # a 5x5 box blur: soft edges
        for dx in range(-2, 3):
            soft += np.roll(blocks[:height, :half], (dy, dx), axis=(0, 1))
    picture = base + 40 * soft / 25
    frames = []
    for t in range(count):
        left = np.clip(np.roll(picture, 3 * t, axis=1), 0, 255).astype(np.uint8)
        frames.append(np.concatenate([left, np.roll(left, -6, axis=1)], axis=1))
    return np.stack(frames)


def measure(
    encoder: Encoder, frames: np.ndarray, path: Path, preset: str | None = None, quality: int = 18
) -> tuple[float, int, float]:
    count, height, width, _ = frames.shape
    started = time.perf_counter()
    with VideoWriter(
        path, fps=24, width=width, height=height, encoder=encoder, preset=preset, crf=quality
    ) as writer:
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
    runs: list[tuple[Encoder, str | None, int]] = [
        (LIBX264, None, 18),
        (LIBX264, "medium", 18),
        (LIBX264, None, 16),
    ]
    runs += [(Encoder(c, c), None, 18) for c in NVENC_CODECS if nvenc_problem(c) is None]
    frames = panning_frames(count, width, height)
    print(f"{width}x{height}, {count} frames; quality = CRF for libx264, CQ for NVENC")
    with tempfile.TemporaryDirectory() as folder:
        for index, (encoder, preset, quality) in enumerate(runs):
            ms, size, psnr = measure(encoder, frames, Path(folder) / f"{index}.mp4", preset, quality)
            name = f"{encoder.codec} {preset or encoder.preset} q{quality}"
            print(f"  {name:24s}{ms:7.1f} ms/frame {size / count / 1024:8.1f} KiB/frame  PSNR {psnr:5.2f} dB")


if __name__ == "__main__":
    main()
