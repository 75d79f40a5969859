"""Benchmark decode + re-encode of a 1080p clip: stereocrafter.media.video_io vs the ffmpeg command line.

Both sides decode the same H.264 clip and encode it with the same settings (libx264, CRF 18,
preset medium, yuv420p, BT.709 tags), and the script prints their wall times and the ratio from one
run on the same machine. ffmpeg comes from Debian's package: it is installed if missing (full run).

    python -m bench.video_io           # 1920x1080, 120 frames
    python -m bench.video_io --smoke   # 320x180, 24 frames; the ffmpeg side only if it is installed
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.video_io import iter_frames, probe

CRF, PRESET = 18, "medium"


def ensure_ffmpeg(install: bool) -> str | None:
    found = shutil.which("ffmpeg")
    if found or not install:
        return found
    print("ffmpeg not found: installing Debian's ffmpeg package")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "ffmpeg"], check=True, env=env)
    return shutil.which("ffmpeg")


def make_clip(path: Path, frames: int, width: int, height: int) -> None:
    """A moving, textured test clip encoded with our writer (so no ffmpeg is needed for it)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    with VideoWriter(path, fps=Fraction(30000, 1001), width=width, height=height, crf=16) as writer:
        for t in range(frames):
            r = 0.5 + 0.4 * np.sin((x + 4 * t) / 37.0)
            g = 0.5 + 0.4 * np.cos((y - 3 * t) / 23.0)
            b = 0.5 + 0.4 * np.sin((x + y + 5 * t) / 51.0)
            rgb = np.stack([r, g, b], axis=-1)
            writer.write((rgb * 255).round().astype(np.uint8)[None])


def ours(src: Path, dst: Path) -> float:
    info = probe(src)
    start = time.perf_counter()
    with VideoWriter(dst, fps=info.fps, width=info.width, height=info.height, crf=CRF, preset=PRESET) as w:
        for chunk in iter_frames(src, chunk_size=16):
            w.write(chunk)
    return time.perf_counter() - start


# The RGB round trip video_io makes (the pipeline works on RGB), as ffmpeg filters with the same
# swscale flags: decoded YUV -> rgb24 -> BT.709 yuv420p. (Debian 12's ffmpeg 5.1 has no
# out_chroma_loc option; the siting does not change the cost.)
SWS = "bicubic+accurate_rnd+full_chroma_int+full_chroma_inp"
RGB_ROUND_TRIP = (
    f"scale=flags={SWS},format=rgb24,scale=out_color_matrix=bt709:out_range=tv:flags={SWS},format=yuv420p"
)


def theirs(ffmpeg: str, src: Path, dst: Path, via_rgb: bool = False) -> float:
    filters = ["-vf", RGB_ROUND_TRIP] if via_rgb else []
    command = [
        ffmpeg, "-v", "error", "-y", "-i", str(src), "-an", *filters,
        "-c:v", "libx264", "-crf", str(CRF), "-preset", PRESET, "-pix_fmt", "yuv420p",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
        "-movflags", "+faststart", str(dst),
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small clip; no ffmpeg install")
    args = parser.parse_args()
    width, height, frames = (320, 180, 24) if args.smoke else (1920, 1080, 120)
    ffmpeg = ensure_ffmpeg(install=not args.smoke)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "clip.mp4"
        make_clip(src, frames, width, height)
        ours_s = ours(src, Path(tmp) / "ours.mp4")
        fps = frames / ours_s
        print(f"video_io decode+encode {width}x{height} x{frames}: {ours_s:6.2f} s ({fps:6.1f} frames/s)")
        if ffmpeg is None:
            print("ffmpeg not installed: comparison skipped")
            return
        theirs_s = theirs(ffmpeg, src, Path(tmp) / "ffmpeg.mp4")
        rgb_s = theirs(ffmpeg, src, Path(tmp) / "ffmpeg_rgb.mp4", via_rgb=True)
        for label, secs in (("ffmpeg CLI, YUV straight through", theirs_s), ("ffmpeg CLI via rgb24", rgb_s)):
            print(f"{label} {width}x{height} x{frames}: {secs:6.2f} s ({frames / secs:6.1f} frames/s)")
        print(f"ratio video_io / ffmpeg (YUV straight through): {ours_s / theirs_s:.2f}x the time")
        print(f"ratio video_io / ffmpeg (same RGB round trip): {ours_s / rgb_s:.2f}x the time")
        sizes = [(Path(tmp) / n).stat().st_size for n in ("ours.mp4", "ffmpeg.mp4")]
        print(f"output sizes: video_io {sizes[0] / 1e6:.2f} MB, ffmpeg {sizes[1] / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
