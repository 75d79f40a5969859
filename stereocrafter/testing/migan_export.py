"""An MI-GAN ONNX pipeline exported the way the authors exported theirs, for tests and the tiny weights.

The published ``scripts/create_onnx_pipeline.py`` (Picsart-AI-Research/MI-GAN) wraps the inference
generator as the submodule ``model`` of a pipeline module that takes ``image`` (uint8, 1x3xHxW) and
``mask`` (uint8, 1x1xHxW, 255 = known), runs the generator at its resolution, blends its output back
with a blurred, dilated mask and returns ``result`` (uint8); it exports that module with the
TorchScript exporter at opset 17 with constant folding and dynamic height and width. ``ExportPipeline``
is this repository's own module of that shape (it resizes the whole frame, as the first pipeline did,
rather than cropping a box around the holes as v2 does: the crop touches no generator tensor), so
``models.migan_onnx`` meets the graph layout the published export has: ``model.*`` initializers and
each noise folded with its strength.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from stereocrafter.models.migan import MiganGenerator


def _gaussian_5x5(sigma: float = 1.0) -> torch.Tensor:
    taps = torch.exp(-((torch.arange(5, dtype=torch.float32) - 2.0) ** 2) / (2 * sigma**2))
    kernel = torch.outer(taps, taps)
    return (kernel / kernel.sum())[None, None]


class ExportPipeline(torch.nn.Module):
    """uint8 image and mask in, uint8 image out, the generator as ``model``."""

    blur: torch.Tensor

    def __init__(self, generator: MiganGenerator) -> None:
        super().__init__()
        self.model = generator
        self.register_buffer("blur", _gaussian_5x5())

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        res = self.model.arch.resolution
        height, width = image.shape[2], image.shape[3]
        rgb = F.interpolate(image.float(), size=(res, res), mode="bilinear") * (2 / 255) - 1
        known = F.interpolate(mask.float(), size=(res, res), mode="nearest") / 255
        out = self.model(torch.cat([known - 0.5, rgb * known], dim=1))
        out = F.interpolate(((out * 0.5 + 0.5) * 255).clamp(0, 255), size=(height, width), mode="bilinear")
        soft = F.max_pool2d(mask.float(), 3, stride=1, padding=1)
        soft = F.conv2d(F.pad(soft, (2, 2, 2, 2), mode="reflect"), self.blur) / 255
        return (image.float() * soft + out * (1 - soft)).clamp(0, 255).to(torch.uint8)


def export_pipeline(generator: MiganGenerator, path: str | os.PathLike[str], size: int = 256) -> Path:
    """``generator`` inside ``ExportPipeline`` exported to ``path`` as the authors did theirs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.full((1, 3, size, size), 255, dtype=torch.uint8)
    mask = torch.full((1, 1, size, size), 255, dtype=torch.uint8)
    mask[..., 10, 10] = 0
    axes = {0: "batch_size", 2: "height", 3: "width"}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and folding notes
        torch.onnx.export(
            ExportPipeline(generator.eval()),
            (image, mask),
            str(path),
            export_params=True,
            input_names=["image", "mask"],
            output_names=["result"],
            dynamic_axes={"image": axes, "mask": axes, "result": axes},
            do_constant_folding=True,
            opset_version=17,
            dynamo=False,
        )
    return path
