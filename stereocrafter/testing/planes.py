"""A synthetic stereo scene with known geometry, rendered analytically.

Fronto-parallel textured planes (a background filling the frame and rectangles in front of it),
each with a constant disparity. Everything is defined in left-image coordinates: plane k covers the
pixel centres ``x0 <= x < x1``, ``y0 <= y < y1`` of the left view, i.e. the continuous footprint
``[x0 - 0.5, x1 - 0.5)``. In the right view a surface point at left-image x appears at
``x - disparity`` (near planes move left). From that the true right view and the true disocclusion
map follow exactly:

- right pixel x' shows the front-most plane k whose footprint holds ``x' + d_k``;
- it is a hole when that surface point is not visible in the left view (a nearer plane covers it
  there, or it lies outside the left frame).

Textures are smooth functions of the left-image coordinates, so a bilinear splat can reproduce them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Plane:
    disparity: float
    x0: float = -math.inf
    x1: float = math.inf
    y0: float = -math.inf
    y1: float = math.inf
    phase: float = 0.0

    def covers(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Footprint test for continuous left-image points."""
        return (x >= self.x0 - 0.5) & (x < self.x1 - 0.5) & (y >= self.y0 - 0.5) & (y < self.y1 - 0.5)

    def texture(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(3, ...) RGB in [0.1, 0.9], smooth (periods of 20+ px)."""
        channels = []
        for c, period in enumerate((31.0, 23.0, 41.0)):
            wave = torch.sin(2 * math.pi * (x / period + y / (1.7 * period)) + self.phase + 1.3 * c)
            channels.append(0.5 + 0.25 * wave + 0.1 * math.cos(self.phase + c))
        return torch.stack(channels)


def default_planes() -> list[Plane]:
    """Far background, a mid-depth and a near rectangle; fractional disparities."""
    return [
        Plane(disparity=-6.3, phase=0.0),  # background: behind the screen
        Plane(disparity=2.7, x0=40, x1=100, y0=10, y1=50, phase=1.1),
        Plane(disparity=12.4, x0=110, x1=150, y0=20, y1=60, phase=2.3),
    ]


def render(planes: list[Plane], height: int, width: int) -> dict[str, torch.Tensor]:
    """Left view, disparity, true right view and true holes, float64.

    Returns:
        left (3, H, W), disparity (1, H, W) px, right (3, H, W) (0 in holes), holes (1, H, W) bool.
        ``planes`` must be ordered back to front.
    """
    y, x = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )

    def front_layer(xs_of: list[torch.Tensor]) -> torch.Tensor:
        # For each pixel, index of the front-most plane covering its point (plane k is tested at
        # xs_of[k]), -1 if none.
        layer = torch.full((height, width), -1, dtype=torch.long)
        for k, plane in enumerate(planes):
            layer = torch.where(plane.covers(xs_of[k], y), torch.tensor(k), layer)
        return layer

    # Left view: every plane is sampled at the pixel centre itself.
    left_layer = front_layer([x] * len(planes))
    left = torch.zeros(3, height, width, dtype=torch.float64)
    disparity = torch.zeros(1, height, width, dtype=torch.float64)
    for k, plane in enumerate(planes):
        mask = left_layer == k
        left = torch.where(mask, plane.texture(x, y), left)
        disparity = torch.where(mask, torch.tensor(plane.disparity, dtype=torch.float64), disparity)

    # Right view: plane k seen at x' comes from the left-image point x' + d_k.
    sources = [x + plane.disparity for plane in planes]
    right_layer = front_layer(sources)
    right = torch.zeros(3, height, width, dtype=torch.float64)
    holes = torch.ones(1, height, width, dtype=torch.bool)
    for k, plane in enumerate(planes):
        xs = sources[k]
        shown = right_layer == k
        # Visible in the left view: inside the frame and the front-most plane there.
        in_frame = (xs >= -0.5) & (xs < width - 0.5)
        left_front = front_layer([xs] * len(planes))
        visible = shown & in_frame & (left_front == k)
        right = torch.where(visible, plane.texture(xs, y), right)
        holes = holes & ~visible
    return {"left": left, "disparity": disparity, "right": right, "holes": holes}
