"""The one difference left between ``models.vda_depth`` and the published procedure: where the
aligned depth is kept.

The published procedure resizes every window's depth to the frame size (bilinear, align_corners)
before the least-squares fit and the blend. ``VdaDepthPipeline`` fits at the frame size too (it
resizes the two fitted and the two reference frames), but keeps the aligned depth at the processing
size (the pipeline resizes it later). Both are run here on the same frames through the tiny random
VDA model (``stereocrafter.testing.weights.TINY_VDA``; the real weights cannot be downloaded here)
and compared at the frame size, relative to the depth's range; with ``--processing-size-fit`` the
former fit at the processing size is shown beside it. Random weights make noisy depth, so this
bounds the effect rather than predicting it for real depth.

    python -m bench.vda_align                # 72x128 (input size 70) and 1920x1080 (518; minutes)
    python -m bench.vda_align --smoke        # the small sizes only
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from stereocrafter.models.vda import VideoDepthAnything
from stereocrafter.models.vda_depth import VdaDepthPipeline, plan_windows, processing_size
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


SIZES = ((72, 128, 70), (144, 256, 140), (288, 512, 280), (1080, 1920, 518))  # height, width, input size


def deviation(height: int, width: int, input_size: int, frames: int, fit_at_frame: bool = True) -> float:
    """max |ours - published| / range at the frame size."""
    h, w = processing_size(height, width, input_size)
    torch.manual_seed(0)
    model = VideoDepthAnything(TINY_VDA).eval()
    source = clip(frames, h, w)  # the frames as the model sees them (at the processing size)
    size = (height, width) if fit_at_frame else None
    ours = torch.cat([d for _, d in VdaDepthPipeline(model).iter_depth(source, frame_size=size)])
    ours = F.interpolate(ours, size=(height, width), mode="bilinear", align_corners=True)[:, 0]
    published = torch.cat([d for _, d in AtFrameSize(model, (height, width)).iter_depth(source)])[:, 0]
    span = float(published.max() - published.min())
    return float((ours - published).abs().max()) / span


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=46)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--processing-size-fit", action="store_true")
    args = parser.parse_args()
    print(f"tiny random VDA, {args.frames} frames ({len(plan_windows(args.frames))} windows)")
    for height, width, input_size in SIZES[:-1] if args.smoke else SIZES:
        ours = deviation(height, width, input_size, args.frames)
        line = f"{width}x{height} at input size {input_size}: max |ours - published| / range {ours:.2e}"
        if args.processing_size_fit:
            before = deviation(height, width, input_size, args.frames, False)
            line += f"   (fit at the processing size: {before:.2e})"
        print(line)


if __name__ == "__main__":
    main()
