"""A long synthetic video whose depth is known, and a depth stage that returns it distorted.

Every frame carries its true depth (DepthCrafter's convention: 1 = near) in the blue channel;
red and green are a smooth texture. Three planes move in depth over the video (the background
recedes, a rectangle approaches, another drifts), so each segment's own depth range differs from
its neighbours'; that is what makes per-segment normalisation jump at every boundary. From
``cut_at`` on, a different shot: other colours and another layout (a scene cut).

``KnownDepth`` stands in for DepthCrafter's stage (``depth_stages.DepthStage``): it reads the
frames it is given, takes the blue channel as the depth and applies a random affine map drawn anew
for every call, which is DepthCrafter's per-clip ambiguity (its depth is right only up to such a
map per clip). ``KnownVdaModel`` does the same inside Video Depth Anything's own procedure
(``VdaDepthPipeline``: windows of 32, key frames, least-squares alignment, blending): it stands in
for the network, one random map per window it is called on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stereocrafter.client import SegmentsResult, convert_segments
from stereocrafter.config import StereoConfig
from stereocrafter.long.local import LocalBackend, LocalSegment
from stereocrafter.models.vda_depth import IMAGENET_MEAN, IMAGENET_STD
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.stages.base import FrameSource
from stereocrafter.stages.depthcrafter import DepthCrafterStage
from stereocrafter.stereo.splatting import disparity_from_depth


def true_depth(t: int, n: int, height: int, width: int, cut_at: int | None) -> np.ndarray:
    """(H, W) depth in [0, 1] of frame t of n."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    shot2 = cut_at is not None and t >= cut_at
    s = t / max(n - 1, 1)
    if not shot2:
        depth = np.full((height, width), 0.30 - 0.10 * s)  # the background recedes
        depth += 0.05 * y / height  # a slanted floor
        a = (x >= 0.15 * width) & (x < 0.45 * width) & (y >= 0.2 * height) & (y < 0.7 * height)
        depth[a] = 0.5 + 0.2 * s  # approaching
        cx = 0.55 * width + 0.05 * width * math.sin(2 * math.pi * s)
        b = (np.abs(x - cx) < 0.1 * width) & (y >= 0.4 * height) & (y < 0.9 * height)
        depth[b] = 0.6
        if 0.3 <= s <= 0.45:  # something very near passes by, in one segment only
            c = (np.abs(x - (0.2 + 3 * (s - 0.3)) * width) < 0.08 * width) & (y < 0.35 * height)
            depth[c] = 0.95
    else:
        depth = 0.2 + 0.6 * x / width  # a wall at an angle
        c = (np.abs(x - 0.3 * width) < 0.15 * width) & (np.abs(y - 0.5 * height) < 0.25 * height)
        depth[c] = 0.9 - 0.2 * s
    return depth


def render(n: int, height: int, width: int, cut_at: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(n, H, W, 3) uint8 frames and (n, H, W) the depth they carry (blue / 255)."""
    frames = np.empty((n, height, width, 3), dtype=np.uint8)
    depths = np.empty((n, height, width))
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    for t in range(n):
        d = np.round(true_depth(t, n, height, width, cut_at) * 255) / 255
        shot2 = cut_at is not None and t >= cut_at
        if not shot2:
            r = 0.7 + 0.2 * np.sin(2 * math.pi * (x / 37 + t / 40))
            g = 0.6 + 0.2 * np.cos(2 * math.pi * y / 29)
        else:
            r = 0.15 + 0.1 * np.sin(2 * math.pi * x / 23)
            g = 0.15 + 0.1 * np.cos(2 * math.pi * (x + y) / 31)
        frames[t] = np.clip(np.round(np.stack([r, g, d], axis=-1) * 255), 0, 255).astype(np.uint8)
        depths[t] = d
    return frames, depths


class KnownDepth:
    """A depth stage (``stages.base.DepthStage``) in DepthCrafter's place: its sizes, its name."""

    name = DepthCrafterStage.name
    processing_size = staticmethod(DepthCrafterStage.processing_size)
    resize = staticmethod(DepthCrafterStage.resize)
    warmup_calls = staticmethod(DepthCrafterStage.warmup_calls)

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.watched = torch.nn.Identity()  # progress hooks attach here; it is never called
        self.checked: list[torch.nn.Module] = []
        self.maps: list[tuple[float, float]] = []  # the distortion of each call

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]:
        return []  # no model call: the stage's progress jumps to the end when it finishes

    def iter_depth(self, frames: FrameSource, *_: Any) -> Iterator[tuple[int, torch.Tensor]]:
        scale, shift = float(self.rng.uniform(0.4, 2.5)), float(self.rng.uniform(-0.6, 0.6))
        self.maps.append((scale, shift))
        for start in range(0, len(frames), 8):
            chunk = frames[start : start + 8]
            yield start, (chunk[:, 2:3].float() * scale + shift).cpu()


class KnownVdaModel(torch.nn.Module):
    """In the network's place inside ``VdaDepthPipeline``: (1, 32, 3, h, w) ImageNet-normalised
    frames -> (1, 32, h, w): the blue channel (the true depth) under a random affine map per call,
    kept positive as inverse depth is."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.rng = np.random.default_rng(seed)
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # gives the pipeline its device
        self.maps: list[tuple[float, float]] = []

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        scale, shift = float(self.rng.uniform(0.4, 2.5)), float(self.rng.uniform(0.0, 0.6))
        self.maps.append((scale, shift))
        blue = frames[:, :, 2] * IMAGENET_STD[2] + IMAGENET_MEAN[2]
        return blue * scale + shift


class DisparityProbe:
    """An ``Observer``: the disparity (px) the stereo pass used, per frame of the long video."""

    def __init__(self, store: dict[int, torch.Tensor], offset: int, max_disp: float) -> None:
        self.store, self.offset, self.max_disp = store, offset, max_disp

    def on_start(self, **_: Any) -> None:
        pass

    def on_frames(self, start: int, left: Any, depth: torch.Tensor, occlusion: Any, right: Any) -> None:
        for i in range(depth.shape[0]):
            disparity = disparity_from_depth(depth[i : i + 1], self.max_disp)
            self.store[self.offset + start + i] = disparity[0, 0].clone()


def convert_both_ways(
    pipeline: StereoPipeline, segments: list[LocalSegment], tmp: Path, **kwargs: Any
) -> tuple[dict[int, torch.Tensor], dict[int, torch.Tensor], SegmentsResult]:
    """Each segment converted alone (one plain request each), then all through
    ``convert_segments`` (``kwargs``); the disparity each used, per frame, and the result."""
    max_disp = pipeline.config.max_disp
    unaligned: dict[int, torch.Tensor] = {}
    aligned: dict[int, torch.Tensor] = {}
    alone = LocalBackend(
        pipeline, tmp, observer_factory=lambda s: DisparityProbe(unaligned, s.start, max_disp)
    )
    for i, segment in enumerate(segments):
        alone.stereo(segment, str(tmp / f"alone{id(segments)}_{i}.mp4"))
    backend = LocalBackend(
        pipeline, tmp, observer_factory=lambda s: DisparityProbe(aligned, s.start, max_disp)
    )
    pairs = [(s, str(tmp / f"part{id(segments)}_{i}.mp4")) for i, s in enumerate(segments)]
    return unaligned, aligned, convert_segments(pairs, backend, **kwargs)
