"""Test media made on the spot with PyAV's own encoders: no files are downloaded or checked in.

``scene_frames`` draws a moving, textured RGB sequence with smooth colour gradients (so that lossy
codecs keep it well above 38 dB), and ``make_video`` encodes it with a chosen codec/container, with
optional audio, rotation metadata and colour tags.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np


def scene_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """(n, height, width, 3) uint8: gradients plus a moving soft blob and a few stripes."""
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 2 * math.pi, size=3)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    for t in range(n):
        cx = width * (0.3 + 0.4 * (t / max(n - 1, 1)))
        cy = height * 0.5
        blob = np.exp(-(((x - cx) / (0.15 * width)) ** 2 + ((y - cy) / (0.2 * height)) ** 2))
        r = 0.25 + 0.5 * x / width + 0.2 * blob
        g = 0.3 + 0.35 * y / height + 0.15 * np.sin(2 * math.pi * x / 23.0 + phase[1] + 0.2 * t)
        b = 0.5 + 0.3 * np.cos(2 * math.pi * (x + y) / 41.0 + phase[2]) - 0.2 * blob
        rgb = np.stack([r, g, b], axis=-1)
        frames[t] = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return frames


def sine_audio(seconds: float, rate: int = 48000, channels: int = 2) -> np.ndarray:
    """(channels, samples) int16 sine tone."""
    samples = round(seconds * rate)
    t = np.arange(samples) / rate
    tone = 0.3 * np.sin(2 * math.pi * 440.0 * t)
    return np.round(np.tile(tone, (channels, 1)) * 32767).astype(np.int16)


def make_video(
    path: Path,
    frames: np.ndarray,
    *,
    fps: Fraction | int = 24,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    audio_codec: str | None = None,
    audio_seconds: float | None = None,
    rotation: int = 0,
    options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB ``frames`` to ``path`` (container from the suffix) and return the path."""
    n, height, width, _ = frames.shape
    container = av.open(str(path), mode="w")
    stream: Any = container.add_stream(codec, rate=fps)  # a video stream (PyAV types the union)
    stream.width, stream.height = width, height
    stream.pix_fmt = pix_fmt
    stream.codec_context.options = options or {}
    if rotation:
        stream.set_display_rotation(rotation)
    audio: Any = None
    if audio_codec is not None:
        audio = container.add_stream(audio_codec, rate=48000, layout="stereo")
    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
        frame.pts = i
        frame.time_base = 1 / Fraction(fps)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    if audio is not None:
        seconds = audio_seconds if audio_seconds is not None else n / float(fps)
        pcm = sine_audio(seconds)
        step = 1024
        for start in range(0, pcm.shape[1], step):
            block = np.ascontiguousarray(pcm[:, start : start + step])
            aframe = av.AudioFrame.from_ndarray(
                block.reshape(1, -1, order="F"), format="s16", layout="stereo"
            )
            aframe.sample_rate = 48000
            aframe.pts = start
            aframe.time_base = Fraction(1, 48000)
            container.mux(audio.encode(aframe))
        container.mux(audio.encode(None))
    container.close()
    return path


def audio_duration(path: Path) -> float:
    """Seconds of audio in the first audio stream, from its decoded samples."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return samples / stream.rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def depth_bomb(path: Path, frames: int, size: int, tag: dict[str, Any]) -> Path:
    """``frames`` flat ``size`` x ``size`` 16-bit frames: a few KB on disk, ``frames`` x
    ``size``² x 2 bytes decoded. One frame is encoded and its packet repeated (FFV1 frames are
    all key frames), so making it costs nothing either."""
    with av.open(str(path), mode="w", format="matroska") as out:
        out.metadata["STEREOCRAFTER_DEPTH"] = json.dumps(tag)
        stream = out.add_stream("ffv1", rate=24, options={"level": "3", "g": "1"})
        stream.width = stream.height = size
        stream.pix_fmt = "gray16le"
        frame = av.VideoFrame.from_ndarray(np.zeros((size, size), dtype=np.uint16), format="gray16le")
        frame.pts, frame.time_base = 0, Fraction(1, 24)
        encoded = [bytes(p) for p in stream.encode(frame)] + [bytes(p) for p in stream.encode(None)]
        for t in range(frames):
            packet = av.Packet(encoded[0])
            packet.pts = packet.dts = t
            packet.time_base, packet.stream, packet.is_keyframe = Fraction(1, 24), stream, True
            out.mux(packet)
    return path
