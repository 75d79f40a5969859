"""Video Depth Anything Small (``models.vda``): the published checkpoint layout at real size, a
temporal module against plain tensor maths, the reference's position-grid resize, and the whole
model's shapes (random weights: the real ones cannot be downloaded here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from stereocrafter.models.vda import FrameGroupNorm, VideoDepthAnything, reference_pos_encoding
from stereocrafter.testing.weights import TINY_VDA

TINY = TINY_VDA  # the tiny weights' sizes (stereocrafter.testing.weights)


def randomise(module: torch.nn.Module, seed: int) -> None:
    """Every parameter drawn anew (the library's init zeroes some, which would hide a path)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)


def sinusoid(length: int, channels: int) -> torch.Tensor:
    """The transformer's table: sin at even channels, cos at odd, wavelengths 10000^(2i/C)."""
    position = torch.arange(length, dtype=torch.float64)[:, None]
    rate = torch.exp(torch.arange(0, channels, 2, dtype=torch.float64) * (-math.log(10000.0) / channels))
    table = torch.zeros(length, channels, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(position * rate), torch.cos(position * rate)
    return table.float()


def temporal_module_by_hand(module: torch.nn.Module, x: torch.Tensor, heads: int) -> torch.Tensor:
    """The reference's temporal module written out: x (B, C, T, H, W) -> the same shape."""
    b, c, t, h, w = x.shape
    p = dict(module.named_parameters())
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    normed = F.group_norm(frames, 32, p["norm.weight"], p["norm.bias"], eps=1e-6)  # per frame
    tokens = normed.reshape(b, t, c, h * w).permute(0, 3, 1, 2).reshape(b * h * w, t, c)  # time as sequence
    hidden = tokens @ p["proj_in.weight"].T + p["proj_in.bias"]
    block = "transformer_blocks.0."
    for a, norm in ((1, "norm1"), (2, "norm2")):
        y = F.layer_norm(hidden, (c,), p[f"{block}{norm}.weight"], p[f"{block}{norm}.bias"], eps=1e-5)
        y = y + sinusoid(t, c)  # positions added before each temporal attention
        q, k, v = (y @ p[f"{block}attn{a}.to_{n}.weight"].T for n in "qkv")  # no bias
        split = [z.reshape(b * h * w, t, heads, c // heads).transpose(1, 2) for z in (q, k, v)]
        scores = split[0] @ split[1].transpose(-1, -2) / math.sqrt(c // heads)
        attended = (scores.softmax(-1) @ split[2]).transpose(1, 2).reshape(b * h * w, t, c)
        hidden = (
            hidden + attended @ p[f"{block}attn{a}.to_out.0.weight"].T + p[f"{block}attn{a}.to_out.0.bias"]
        )
    y = F.layer_norm(hidden, (c,), p[f"{block}norm3.weight"], p[f"{block}norm3.bias"], eps=1e-5)
    value, gate = (y @ p[f"{block}ff.net.0.proj.weight"].T + p[f"{block}ff.net.0.proj.bias"]).chunk(2, -1)
    hidden = hidden + (value * F.gelu(gate)) @ p[f"{block}ff.net.2.weight"].T + p[f"{block}ff.net.2.bias"]
    out = hidden @ p["proj_out.weight"].T + p["proj_out.bias"]
    out = out.reshape(b, h, w, t, c).permute(0, 3, 4, 1, 2).reshape(b * t, c, h, w)
    return (out + frames).reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


@pytest.mark.parametrize("channels", [64, 192])
def test_a_temporal_module_matches_plain_tensor_maths(small: VideoDepthAnything, channels: int) -> None:
    """Per-frame GroupNorm, attention over time only with positions added before each of the two
    attentions, GEGLU feed-forward, residuals: the library module at real size within 1e-5."""
    index = {192: 0, 64: 2}[channels]
    module = small.motion_modules[index]
    assert isinstance(module.norm, FrameGroupNorm)
    randomise(module, seed=channels)
    x = torch.randn(2, channels, 7, 3, 4, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = module(x.permute(0, 2, 1, 3, 4).flatten(0, 1), num_frames=7)
        want = temporal_module_by_hand(module, x, heads=8)
    got = got.unflatten(0, (2, 7)).permute(0, 2, 1, 3, 4)
    assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max()))


def test_the_position_grid_is_resized_as_the_reference_does(small: VideoDepthAnything) -> None:
    """Unchanged at 518x518; otherwise (patches + 0.1) / 37 as the bicubic scale factor, which the
    backbone uses (transformers' own size-based resize gives other values)."""
    table = small.backbone.embeddings.position_embeddings.detach()
    assert reference_pos_encoding(table, 518, 518) is table
    resized = reference_pos_encoding(table, 70, 126)
    grid = table[:, 1:].reshape(1, 37, 37, 384).permute(0, 3, 1, 2)
    by_formula = F.interpolate(grid, scale_factor=(5.1 / 37, 9.1 / 37), mode="bicubic", antialias=False)
    assert torch.equal(resized[:, 1:], by_formula.permute(0, 2, 3, 1).reshape(1, 45, 384))
    assert torch.equal(resized[:, :1], table[:, :1])
    by_size = F.interpolate(grid, size=(5, 9), mode="bicubic", align_corners=False)
    assert (by_size - by_formula).abs().max() > 1e-3  # the two resizes really differ
    embeddings = small.backbone.embeddings
    assert torch.equal(embeddings.interpolate_pos_encoding(torch.zeros(1, 46, 384), 70, 126), resized)


def test_the_model_gives_nonnegative_depth_of_the_input_size_mixed_over_time() -> None:
    model = VideoDepthAnything(TINY).eval()
    randomise(model, seed=5)
    frames = torch.randn(1, 4, 3, 28, 42, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        depth = model(frames)
        changed = frames.clone()
        changed[:, 3] += 1.0
        other = model(changed)
    assert depth.shape == (1, 4, 28, 42) and bool((depth >= 0).all()) and float(depth.max()) > 0
    assert not torch.equal(depth[:, 0], other[:, 0])  # frame 3 reaches frame 0 through time only
    with pytest.raises(ValueError, match="multiples of 14"):
        model(torch.zeros(1, 2, 3, 30, 42))
    with pytest.raises(ValueError, match="at most 32"):
        model(torch.zeros(1, 33, 3, 28, 28))


def test_the_transformers_range_is_the_tested_one() -> None:
    """pyproject's range: its low end is what `make test-transformers-low` runs this file under (CI),
    its high end admits the pinned version (the rest of the suite): no version the code cannot load."""
    import tomllib

    from packaging.requirements import Requirement

    root = Path(__file__).resolve().parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    spec = next(Requirement(d).specifier for d in deps if d.startswith("transformers"))
    pinned = next(
        line.split("==")[1] for line in (root / "requirements/runtime.txt").read_text().splitlines()
        if line.startswith("transformers==")
    )  # fmt: skip
    assert spec.contains(pinned) and spec.contains("5.18.0") and not spec.contains("5.17.0")
    assert not spec.contains("5.25.0")  # untested
