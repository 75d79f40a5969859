"""``models.vda_checkpoint``: the published checkpoint layout at real size loads strictly; another
layout is refused; the tiny weights are a checkpoint of that layout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stereocrafter.models.vda import SMALL, VideoDepthAnything
from stereocrafter.models.vda_checkpoint import architecture_of, load_vda, published_keys, to_published
from stereocrafter.models.vda_depth import (
    VdaDepthPipeline,
)
from stereocrafter.testing.weights import TINY_VDA, write_tiny_vda
from tests.support.vda import depth_clip, randomise, run_stage

MOTION = "head.motion_modules.{}.temporal_transformer.transformer_blocks.0"
TINY = TINY_VDA  # the tiny weights' sizes (stereocrafter.testing.weights)


def test_the_published_layout_at_real_size_loads_strictly(small: VideoDepthAnything, tmp_path: Path) -> None:
    """The real-size model in the published key layout (shapes from the reference's definitions:
    ViT-S/14 with a fused qkv and a 37x37 position grid, the DPT head's [48, 96, 192, 384]
    projections and 64 features, temporal modules on 192, 384, 64, 64 channels) saved as a plain
    state dict and loaded back with ``weights_only``: every key used, the same outputs."""
    state = to_published(small)
    assert list(state) == list(published_keys(SMALL)) and len(state) == 351
    shapes = {
        "pretrained.pos_embed": (1, 37 * 37 + 1, 384),
        "pretrained.patch_embed.proj.weight": (384, 3, 14, 14),
        "pretrained.blocks.11.attn.qkv.weight": (3 * 384, 384),
        "pretrained.blocks.0.ls1.gamma": (384,),
        "head.projects.0.weight": (48, 384, 1, 1),
        "head.resize_layers.0.weight": (48, 48, 4, 4),  # x4 transposed conv
        "head.resize_layers.3.weight": (384, 384, 3, 3),  # stride-2 conv
        "head.scratch.layer4_rn.weight": (64, 384, 3, 3),
        "head.scratch.refinenet1.resConfUnit2.conv2.weight": (64, 64, 3, 3),
        "head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
        "head.motion_modules.1.temporal_transformer.proj_in.weight": (384, 384),
        f"{MOTION.format(0)}.ff.net.0.proj.weight": (2 * 4 * 192, 192),  # GEGLU, inner 4C
        f"{MOTION.format(3)}.attention_blocks.1.pos_encoder.pe": (1, 32, 64),
    }  # fmt: skip
    assert {key: tuple(state[key].shape) for key in shapes} == shapes
    assert sum(v.numel() for k, v in state.items() if not k.endswith(".pe")) == 29_035_137
    path = tmp_path / "video_depth_anything_vits.pth"
    torch.save(state, path)
    loaded = load_vda(path)
    frames = torch.randn(1, 2, 3, 28, 42, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(loaded(frames), small(frames))


def test_a_checkpoint_of_another_layout_is_refused(tmp_path: Path) -> None:
    model = VideoDepthAnything(TINY)
    state = to_published(model)
    del state["head.scratch.layer1_rn.weight"]
    state["head.extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "odd.pth")
    with pytest.raises(
        ValueError, match=r"unknown \['head.extra.weight'\], missing \['head.scratch.layer1_rn"
    ):
        load_vda(tmp_path / "odd.pth", TINY)
    state = to_published(model)
    key = "head.motion_modules.2.temporal_transformer.transformer_blocks.0.attention_blocks.1.pos_encoder.pe"
    state[key] = state[key] + 1
    torch.save(state, tmp_path / "table.pth")
    with pytest.raises(ValueError, match="not the sinusoidal table"):
        load_vda(tmp_path / "table.pth", TINY)
    torch.save({"code": object()}, tmp_path / "pickled.pth")  # a pickled object: never unpickled
    with pytest.raises(Exception, match=r"(?i)weights only|unsupported"):
        load_vda(tmp_path / "pickled.pth", TINY)


def test_refinenet4_is_the_first_fusion_block(tmp_path: Path) -> None:
    """The reference's fusion blocks run refinenet4 first, on the coarsest map alone, so its first
    residual unit (for a skip input) is never used; refinenet3's is. The key map must agree."""
    model = VideoDepthAnything(TINY).eval()
    randomise(model, seed=7)
    frames = torch.randn(1, 2, 3, 28, 28, generator=torch.Generator().manual_seed(8))
    outputs = {}
    for level in (None, 4, 3):
        state = to_published(model)
        if level is not None:
            key = f"head.scratch.refinenet{level}.resConfUnit1.conv1.weight"
            state[key] = state[key] + 1.0
        torch.save(state, tmp_path / f"{level}.pth")
        with torch.no_grad():
            outputs[level] = load_vda(tmp_path / f"{level}.pth", TINY)(frames)
    assert torch.equal(outputs[4], outputs[None]) and not torch.equal(outputs[3], outputs[None])


# -- the inference procedure (models.vda_depth) -------------------------------------------------------


def test_the_tiny_weights_are_a_published_layout_checkpoint_of_their_own_size(tiny_weights: Path) -> None:
    """``make_tiny_weights`` writes VDA's file where the real one goes; the loader reads its sizes
    from its shapes (as it reads ``SMALL`` from the published file) and the procedure runs on it."""
    path = tiny_weights / "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"
    assert path.is_file() and (path.parent / "TINY-RANDOM-WEIGHTS.txt").is_file()
    state = torch.load(path, weights_only=True)
    assert list(state) == list(published_keys(TINY))
    model = load_vda(path)
    assert model.arch == TINY and architecture_of(to_published(VideoDepthAnything(SMALL))) == SMALL
    depth = run_stage(VdaDepthPipeline(model), depth_clip(24, 28, 28))
    assert depth.shape == (24, 28, 28) and bool(torch.isfinite(depth).all())
    assert write_tiny_vda(tiny_weights.parent / "again").read_bytes() != b""
