"""Synthetic stereo clips whose true right view is known everywhere, disocclusions included: the
ground truth of the fill-quality benchmark (``bench/fill_quality.py``) and of the fill's tests.

A scene is fronto-parallel textured layers, back to front, each with a constant disparity (pixels,
larger = nearer), a footprint in left-view coordinates that may move per frame, and a texture of
its own fixed to the layer (it moves with it). A camera pan moves every layer by the same amount
per frame. In the right view a surface point at left-view x appears at x - d; the right pixel x'
shows the front-most layer whose footprint holds x' + d, and its colour there is that layer's
texture, whether or not the left view saw that point: so the true content of every hole is known.

Textures are natural-image-like: a sum of random sinusoids with amplitudes falling as 1/f over
periods from 4 to 96 px, so they are neither flat (where any fill wins) nor white noise (where only
a blur does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Layer:
    disparity: float
    x0: float = -math.inf  # footprint at frame 0, left-view pixel centres x0 <= x < x1
    x1: float = math.inf
    y0: float = -math.inf
    y1: float = math.inf
    velocity: float = 0.0  # px per frame, its own motion (the pan comes on top)
    seed: int = 0
    grain: float = 0.0  # amplitude of a fine grain (periods of 2-3 px) over structures of 64-256 px


@dataclass(frozen=True)
class Scene:
    name: str
    layers: tuple[Layer, ...]
    pan: float = 0.0  # px per frame, every layer
    frames: int = 24
    height: int = 96
    width: int = 192


def _texture(
    seed: int, u: torch.Tensor, v: torch.Tensor, components: int = 24, grain: float = 0.0
) -> torch.Tensor:
    """(3, ...) in about [0.1, 0.9] at texture coordinates (u, v); with ``grain``, large structures
    (periods 64-256 px, strong) under a fine grain of that amplitude (periods 2-3 px)."""
    if grain:
        return _grained(seed, u, v, grain)
    g = torch.Generator().manual_seed(1000 + seed)
    base = torch.rand(3, generator=g) * 0.5 + 0.25
    out = base.view(3, *([1] * u.ndim)).expand(3, *u.shape).clone()
    for _ in range(components):
        period = 4.0 * (24.0 ** float(torch.rand((), generator=g)))  # 4 .. 96 px, log-uniform
        angle = float(torch.rand((), generator=g)) * math.pi
        phase = float(torch.rand((), generator=g)) * 2 * math.pi
        colour = torch.rand(3, generator=g) - 0.5
        amplitude = 0.09 * (period / 96.0) ** 0.5
        wave = torch.sin(2 * math.pi * (u * math.cos(angle) + v * math.sin(angle)) / period + phase)
        out = out + amplitude * colour.view(3, *([1] * u.ndim)) * wave
    return out.clamp(0.02, 0.98)


def _grained(seed: int, u: torch.Tensor, v: torch.Tensor, grain: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(2000 + seed)
    out = (torch.rand(3, generator=g) * 0.4 + 0.3).view(3, *([1] * u.ndim)).expand(3, *u.shape).clone()
    for periods, amplitude, count in (((64.0, 256.0), 0.15, 6), ((2.0, 3.0), grain, 12)):
        for _ in range(count):
            period = periods[0] + (periods[1] - periods[0]) * float(torch.rand((), generator=g))
            angle = float(torch.rand((), generator=g)) * math.pi
            phase = float(torch.rand((), generator=g)) * 2 * math.pi
            colour = torch.rand(3, generator=g) - 0.5
            wave = torch.sin(2 * math.pi * (u * math.cos(angle) + v * math.sin(angle)) / period + phase)
            out = out + amplitude / count**0.5 * colour.view(3, *([1] * u.ndim)) * wave
    return out.clamp(0.02, 0.98)


def _offset(layer: Layer, scene: Scene, t: int) -> float:
    return t * (layer.velocity + scene.pan)


def _covers(layer: Layer, x: torch.Tensor, y: torch.Tensor, offset: float) -> torch.Tensor:
    return ((x >= layer.x0 + offset - 0.5) & (x < layer.x1 + offset - 0.5)
            & (y >= layer.y0 - 0.5) & (y < layer.y1 - 0.5))  # fmt: skip


def render(scene: Scene, t: int) -> dict[str, torch.Tensor]:
    """Frame ``t``: left (3, h, w) in [0, 1], its disparity (1, h, w), the true right view (3, h, w)
    everywhere and the right view's true disparity (1, h, w); float32."""
    y, x = torch.meshgrid(
        torch.arange(scene.height, dtype=torch.float64), torch.arange(scene.width, dtype=torch.float64),
        indexing="ij",
    )  # fmt: skip
    left = torch.zeros(3, scene.height, scene.width, dtype=torch.float64)
    left_disp = torch.zeros(1, scene.height, scene.width, dtype=torch.float64)
    right = torch.zeros_like(left)
    right_disp = torch.zeros_like(left_disp)
    for layer in scene.layers:  # back to front: nearer layers overwrite
        offset = _offset(layer, scene, t)
        here = _covers(layer, x, y, offset)
        left = torch.where(here, _texture(layer.seed, x - offset, y, grain=layer.grain), left)
        left_disp = torch.where(here, torch.tensor(layer.disparity, dtype=torch.float64), left_disp)
        source = x + layer.disparity  # where the right pixel's point of this layer is in the left view
        there = _covers(layer, source, y, offset)
        right = torch.where(there, _texture(layer.seed, source - offset, y, grain=layer.grain), right)
        right_disp = torch.where(there, torch.tensor(layer.disparity, dtype=torch.float64), right_disp)
    return {"left": left.float(), "disparity": left_disp.float(), "right": right.float(),
            "right_disparity": right_disp.float()}  # fmt: skip


def scenes() -> list[Scene]:
    """The benchmark's scenes: still layers; a foreground moving over a still background; a camera
    pan over layers; two objects moving at two depths under a slow pan; two movers under a pan over
    a background with both a fine grain and large structures."""
    background = Layer(disparity=-8.0, seed=1)
    still = (background, Layer(2.0, 30, 90, 15, 70, seed=2), Layer(12.0, 110, 150, 30, 80, seed=3))
    mover = (background, Layer(14.0, 20, 60, 20, 76, velocity=3.0, seed=4))
    panned = (background, Layer(4.0, 40, 100, 10, 60, seed=5), Layer(12.0, 120, 160, 40, 90, seed=6))
    movers = (
        background,
        Layer(3.0, 10, 50, 10, 50, velocity=2.0, seed=7),
        Layer(13.0, 100, 140, 40, 90, velocity=-2.5, seed=8),
    )
    grained = (
        Layer(-8.0, seed=11, grain=0.2),
        Layer(4.0, 30, 70, 20, 70, velocity=1.5, seed=12),
        Layer(12.0, 120, 160, 30, 80, velocity=-2.0, seed=13),
    )
    return [
        Scene("still layers", still),
        Scene("moving foreground, still background", mover),
        Scene("camera pan", panned, pan=2.0),
        Scene("two movers, slow pan", movers, pan=0.5),
        Scene("fine grain over large structures, pan", grained, pan=1.0),
    ]
