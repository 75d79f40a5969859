"""Video Depth Anything's published checkpoint (``video_depth_anything_vits.pth``, a plain state dict
of the reference's module names) mapped to ``models.vda.VideoDepthAnything`` and back, its sizes read
from its shapes, and its loading: ``torch.load(weights_only=True)`` (no pickled code from a download
runs), strictly (every published key used, none missing, every shape equal).

The reference's names, per the team's notes ("Key layout"): ``pretrained.`` is the DINOv2 backbone
(a fused ``attn.qkv``, rows q, k, v; layer scales ``ls1/ls2.gamma``); ``head.projects``,
``resize_layers`` and ``scratch.layer{k}_rn`` are the neck's reassemble and convs; ``refinenet4`` is
the first fusion block; ``output_conv*`` the head; ``motion_modules.i.temporal_transformer`` the
temporal modules, each of whose two attentions carries a copy of the sinusoidal table.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from pathlib import Path

import torch

from stereocrafter.models.vda import PATCH, SMALL, VdaArchitecture, VideoDepthAnything


def architecture_of(state: dict[str, torch.Tensor]) -> VdaArchitecture:
    """The sizes of the model a published-layout checkpoint holds, read from its shapes: the width
    and position grid from ``pos_embed``, the depth from the blocks, the head from its projections.
    Heads are DINOv2's rule (64 channels each, at least 1) and the tapped blocks the published one
    for 12 blocks ([2, 5, 8, 11]: the last of each quarter), so the published file gives ``SMALL``
    and a tiny test checkpoint in the same layout gives its own sizes."""
    pos = state["pretrained.pos_embed"]
    hidden, grid = int(pos.shape[2]), math.isqrt(int(pos.shape[1]) - 1)
    layers = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("pretrained.blocks."))
    if layers % 4:
        raise ValueError(f"a VDA backbone has a multiple of 4 blocks, this one {layers}")
    out_channels = tuple(int(state[f"head.projects.{i}.weight"].shape[0]) for i in range(4))
    return VdaArchitecture(
        hidden_size=hidden,
        layers=layers,
        heads=max(1, hidden // 64),
        image_size=grid * PATCH,
        taps=tuple(layers // 4 * (k + 1) - 1 for k in range(4)),
        out_channels=out_channels,  # type: ignore[arg-type]
        features=int(state["head.scratch.layer1_rn.weight"].shape[0]),
        max_frames=int(state["head.motion_modules.0.temporal_transformer.transformer_blocks.0"
                             ".attention_blocks.0.pos_encoder.pe"].shape[1]),
    )  # fmt: skip


_MOTION = {  # reference name inside ``temporal_transformer.`` -> diffusers' name
    "transformer_blocks.0.attention_blocks.0.": "transformer_blocks.0.attn1.",
    "transformer_blocks.0.attention_blocks.1.": "transformer_blocks.0.attn2.",
    "transformer_blocks.0.norms.0.": "transformer_blocks.0.norm1.",
    "transformer_blocks.0.norms.1.": "transformer_blocks.0.norm2.",
    "transformer_blocks.0.ff_norm.": "transformer_blocks.0.norm3.",
    "transformer_blocks.0.ff.": "transformer_blocks.0.ff.",
    "norm.": "norm.",
    "proj_in.": "proj_in.",
    "proj_out.": "proj_out.",
}
_FUSION = {
    "out_conv.": "projection.",
    "resConfUnit1.": "residual_layer1.",
    "resConfUnit2.": "residual_layer2.",
}


def map_key(key: str) -> str | None:
    """The model's name for a published key; None for the second attention's copy of its temporal
    module's sinusoidal table (the first copy maps to the block's one table; ``load_vda`` checks that
    both equal the model's own). ``KeyError`` for a key this map does not know."""
    if key.startswith("pretrained."):
        return "backbone." + _map_backbone(key.removeprefix("pretrained."))
    if key.startswith("head.motion_modules."):
        index, rest = key.removeprefix("head.motion_modules.").split(".", 1)
        rest = rest.removeprefix("temporal_transformer.")
        if rest.endswith(".pos_encoder.pe"):  # one table per attention; diffusers' block holds one
            own = f"motion_modules.{index}.transformer_blocks.0.pos_embed.pe"
            return own if ".attention_blocks.0." in rest else None
        for old, new in _MOTION.items():
            if rest.startswith(old):
                return f"motion_modules.{index}.{new}{rest.removeprefix(old)}"
    if key.startswith("head."):
        return _map_head(key.removeprefix("head."))
    raise KeyError(key)


def _map_backbone(key: str) -> str:
    simple = {
        "cls_token": "embeddings.cls_token",
        "mask_token": "embeddings.mask_token",
        "pos_embed": "embeddings.position_embeddings",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    if key in simple:
        return simple[key]
    if key.startswith("patch_embed.proj."):
        return "embeddings.patch_embeddings.projection." + key.removeprefix("patch_embed.proj.")
    if key.startswith("blocks."):
        index, rest = key.removeprefix("blocks.").split(".", 1)
        renames = {"attn.proj.": "attention.o_proj.", "ls1.gamma": "layer_scale1.lambda1",
                   "ls2.gamma": "layer_scale2.lambda1"}  # fmt: skip
        for old, new in renames.items():
            if rest.startswith(old):
                rest = new + rest.removeprefix(old)
        if rest.startswith(
            ("norm1.", "norm2.", "mlp.fc1.", "mlp.fc2.", "attention.", "layer_scale", "attn.qkv.")
        ):
            return f"encoder.layer.{index}.{rest}"
    raise KeyError("pretrained." + key)


def _map_head(key: str) -> str:
    if key.startswith("projects."):
        index, rest = key.removeprefix("projects.").split(".", 1)
        return f"neck.reassemble_stage.layers.{index}.projection.{rest}"
    if key.startswith("resize_layers."):
        index, rest = key.removeprefix("resize_layers.").split(".", 1)
        return f"neck.reassemble_stage.layers.{index}.resize.{rest}"
    if key.startswith("scratch.layer") and "_rn." in key:
        level, rest = key.removeprefix("scratch.layer").split("_rn.", 1)
        return f"neck.convs.{int(level) - 1}.{rest}"
    if key.startswith("scratch.refinenet"):
        level, rest = key.removeprefix("scratch.refinenet").split(".", 1)
        for old, new in _FUSION.items():
            rest = rest.replace(old, new)
        rest = rest.replace(".conv1.", ".convolution1.").replace(".conv2.", ".convolution2.")
        return f"neck.fusion_stage.layers.{4 - int(level)}.{rest}"  # refinenet4 is the first fusion block
    heads = {"scratch.output_conv1.": "head.conv1.", "scratch.output_conv2.0.": "head.conv2.",
             "scratch.output_conv2.2.": "head.conv3."}  # fmt: skip
    for old, new in heads.items():
        if key.startswith(old):
            return new + key.removeprefix(old)
    raise KeyError("head." + key)


def from_published(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The published state dict in the model's names: the fused ``attn.qkv`` split into q, k, v (rows
    in that order). Every published key is used (``KeyError`` names one that is not known)."""
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = map_key(key)
        if name is None:
            continue
        if ".attn.qkv." in name:
            base, kind = name.split(".attn.qkv.")
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0), strict=True):
                mapped[f"{base}.attention.{part}.{kind}"] = chunk
        else:
            mapped[name] = value
    return mapped


def to_published(model: VideoDepthAnything) -> dict[str, torch.Tensor]:
    """The model's weights in the published layout (tiny test checkpoints): the inverse of
    ``from_published``, with each temporal attention's copy of the sinusoidal table."""
    ours = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    for key in published_keys(model.arch):
        name = map_key(key)
        if name is None:  # the second attention's copy of the table
            index = key.split(".")[2]
            state[key] = ours[f"motion_modules.{index}.transformer_blocks.0.pos_embed.pe"].clone()
        elif ".attn.qkv." in name:
            base, kind = name.split(".attn.qkv.")
            parts = [ours[f"{base}.attention.{p}.{kind}"] for p in ("q_proj", "k_proj", "v_proj")]
            state[key] = torch.cat(parts, dim=0)
        else:
            state[key] = ours[name].clone()
    return state


def published_keys(arch: VdaArchitecture = SMALL) -> Iterator[str]:
    """Every key of the published checkpoint for ``arch``, from the reference's module names."""
    yield from ("pretrained.cls_token", "pretrained.mask_token", "pretrained.pos_embed")
    yield from ("pretrained.patch_embed.proj.weight", "pretrained.patch_embed.proj.bias")
    for i in range(arch.layers):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            yield from (f"pretrained.blocks.{i}.{part}.weight", f"pretrained.blocks.{i}.{part}.bias")
        yield from (f"pretrained.blocks.{i}.ls1.gamma", f"pretrained.blocks.{i}.ls2.gamma")
    yield from ("pretrained.norm.weight", "pretrained.norm.bias")
    for i in range(4):
        yield from (f"head.projects.{i}.weight", f"head.projects.{i}.bias")
    for i in (0, 1, 3):
        yield from (f"head.resize_layers.{i}.weight", f"head.resize_layers.{i}.bias")
    for level in (1, 2, 3, 4):
        yield f"head.scratch.layer{level}_rn.weight"
    for level in (1, 2, 3, 4):
        net = f"head.scratch.refinenet{level}"
        yield from (f"{net}.out_conv.weight", f"{net}.out_conv.bias")
        for unit in ("resConfUnit1", "resConfUnit2"):
            for conv in ("conv1", "conv2"):
                yield from (f"{net}.{unit}.{conv}.weight", f"{net}.{unit}.{conv}.bias")
    for conv in ("output_conv1", "output_conv2.0", "output_conv2.2"):
        yield from (f"head.scratch.{conv}.weight", f"head.scratch.{conv}.bias")
    for i in range(4):
        tt = f"head.motion_modules.{i}.temporal_transformer"
        yield from (f"{tt}.norm.weight", f"{tt}.norm.bias", f"{tt}.proj_in.weight", f"{tt}.proj_in.bias")
        block = f"{tt}.transformer_blocks.0"
        for a in (0, 1):
            yield from (f"{block}.attention_blocks.{a}.{p}.weight" for p in ("to_q", "to_k", "to_v"))
            yield from (
                f"{block}.attention_blocks.{a}.to_out.0.weight",
                f"{block}.attention_blocks.{a}.to_out.0.bias",
            )
            yield f"{block}.attention_blocks.{a}.pos_encoder.pe"
            yield from (f"{block}.norms.{a}.weight", f"{block}.norms.{a}.bias")
        yield from (f"{block}.ff.net.0.proj.weight", f"{block}.ff.net.0.proj.bias")
        yield from (f"{block}.ff.net.2.weight", f"{block}.ff.net.2.bias")
        yield from (f"{block}.ff_norm.weight", f"{block}.ff_norm.bias")
        yield from (f"{tt}.proj_out.weight", f"{tt}.proj_out.bias")


def load_vda(
    path: str | os.PathLike[str],
    arch: VdaArchitecture | None = None,
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> VideoDepthAnything:
    """The model with the checkpoint at ``path`` (a plain state dict in the published layout), read
    with ``torch.load(weights_only=True)`` (no pickled code from a download runs) and loaded strictly:
    every published key used, none of the model's missing, every shape equal. The temporal modules'
    sinusoidal tables in the file must equal the model's own. ``arch``: the sizes to expect (default:
    read from the file, ``architecture_of``)."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if arch is None:
        try:
            arch = architecture_of(state)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"{path} is not a VDA checkpoint ({type(err).__name__}: {err})") from None
    expected = set(published_keys(arch))
    if set(state) != expected:
        unknown, missing = sorted(set(state) - expected), sorted(expected - set(state))
        raise ValueError(
            f"{path} is not a VDA checkpoint of this size: unknown {unknown[:5]}, missing {missing[:5]}"
        )
    model = VideoDepthAnything(arch)
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    for key, table in state.items():
        if key.endswith(".pos_encoder.pe"):
            index = key.split(".")[2]
            own = ours[f"motion_modules.{index}.transformer_blocks.0.pos_embed.pe"]
            if table.shape != own.shape or not torch.allclose(table.float(), own.float(), atol=1e-6):
                raise ValueError(f"{key} in {path} is not the sinusoidal table the model computes")
    model.load_state_dict(from_published(state), strict=True)
    return model.to(device=device, dtype=dtype).eval()
