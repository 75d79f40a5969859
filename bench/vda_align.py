"""What aligning VDA's windows at the processing size changes (the deviation of ``models.vda_depth``).

The published procedure resizes every window's depth to the frame size (bilinear, align_corners)
before the least-squares fit and the blend; ``VdaDepthPipeline`` aligns at the processing size and
keeps the depth there. Both are run here on the same frames through the tiny random VDA model
(``stereocrafter.testing.weights.TINY_VDA``, the library's own initialisation: the real weights cannot be
downloaded here) and compared at the frame size, relative to the depth's range. Random weights make
noisy depth, so this bounds the effect rather than predicting it for real depth. Minutes on 2 CPU
cores (the head runs at 518x924 for every frame); run by hand, not in the smoke.

    python -m bench.vda_align                # 1920x1080 source, 46 frames (3 windows)
    python -m bench.vda_align --frames 30    # fewer frames (2 windows)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from stereocrafter.models.vda import VideoDepthAnything
from stereocrafter.models.vda_depth import VdaDepthPipeline, processing_size
from stereocrafter.testing.weights import TINY_VDA


class AtFrameSize(VdaDepthPipeline):
    """The published order: each window's depth resized to the frame size before it is aligned."""

    def __init__(self, model: torch.nn.Module, size: tuple[int, int]) -> None:
        super().__init__(model)
        self.size = size

    def _window_depth(self, inputs: torch.Tensor) -> torch.Tensor:
        depth = super()._window_depth(inputs)
        return F.interpolate(depth[:, None], size=self.size, mode="bilinear", align_corners=True)[:, 0]


def clip(frames: int, height: int, width: int) -> torch.Tensor:
    """(T, 3, h, w) in [0, 1]: smooth moving gradients plus a little noise, seeded."""
    g = torch.Generator().manual_seed(0)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    waves = [0.5 + 0.4 * torch.sin(4 * x + k + 0.15 * t) * torch.cos(3 * y - 0.1 * t) for k in range(3)]
    return (torch.stack(waves, 1) + 0.02 * torch.randn(frames, 3, height, width, generator=g)).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=46)
    args = parser.parse_args()
    width, height = 1920, 1080
    h, w = processing_size(height, width)
    torch.manual_seed(0)
    model = VideoDepthAnything(TINY_VDA).eval()
    source = clip(args.frames, h, w)  # the frames as the model sees them (at the processing size)
    ours = torch.cat([d for _, d in VdaDepthPipeline(model).iter_depth(source)])
    ours = F.interpolate(ours, size=(height, width), mode="bilinear", align_corners=True)[:, 0]
    published = torch.cat([d for _, d in AtFrameSize(model, (height, width)).iter_depth(source)])[:, 0]
    span = float(published.max() - published.min())
    difference = (ours - published).abs() / span
    per_frame = difference.flatten(1).max(1).values
    print(f"source {width}x{height}, processing {w}x{h}, {args.frames} frames, tiny random VDA")
    print(f"depth range {float(published.min()):.4g}..{float(published.max()):.4g}")
    print(f"|processing-size alignment - frame-size alignment| / range: max {float(difference.max()):.2e}, "
          f"mean {float(difference.mean()):.2e}")  # fmt: skip
    print("per frame (max):", " ".join(f"{float(v):.1e}" for v in per_frame))


if __name__ == "__main__":
    main()
