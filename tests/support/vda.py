"""Video Depth Anything's test clips and helpers (the checkpoint and the procedure tests)."""

from __future__ import annotations

import torch

from stereocrafter.models.vda_depth import VdaDepthPipeline


def depth_clip(frames: int, h: int = 14, w: int = 28) -> torch.Tensor:
    """(T, 3, h, w) in [0, 1]: channel 0 a depth in [0.1, 0.9] that moves over time, the rest noise."""
    g = torch.Generator().manual_seed(frames)
    t = torch.arange(frames, dtype=torch.float32)[:, None, None]
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    depth = 0.5 + 0.4 * torch.sin(3 * x + 2 * y + 0.2 * t) * torch.cos(0.1 * t + y)
    return torch.cat([depth[:, None], torch.rand(frames, 2, h, w, generator=g)], dim=1)


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn anew (the library's init zeroes some, which would hide a path)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def run_stage(stage: VdaDepthPipeline, clip: torch.Tensor) -> torch.Tensor:
    starts, chunks = [], []
    for start, chunk in stage.iter_depth(clip):
        starts.append(start)
        chunks.append(chunk)
    assert starts == [sum(c.shape[0] for c in chunks[:i]) for i in range(len(chunks))]  # in order, no gap
    return torch.cat(chunks)[:, 0]
