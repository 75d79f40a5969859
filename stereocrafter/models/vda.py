"""Video Depth Anything Small (VDA-S): the model, built from transformers' and diffusers' components,
and its published checkpoint loaded through a key map (the inference procedure around it, windows,
key frames and alignment, is not here yet: issue 20).

The published model (DepthAnything/Video-Depth-Anything, ``VideoDepthAnything(encoder='vits',
features=64, out_channels=[48, 96, 192, 384])``, Apache-2.0) is, per the team's reference notes:

- a DINOv2 ViT-S/14 backbone (384 wide, 12 blocks, 6 heads, layer scale) whose blocks 2, 5, 8 and 11
  (zero-based) are taken with the final LayerNorm applied; class token dropped;
- the Depth Anything (V2) DPT head: 1x1 projections to [48, 96, 192, 384], x4 / x2 transposed-conv,
  identity and stride-2 resizes, 3x3 convs to 64 features, four fusion blocks, then 3x3 conv to 32,
  bilinear (align_corners) upsampling to 14 x the patch grid, 3x3 conv to 32, ReLU, 1x1 conv to 1,
  ReLU: relative inverse depth, >= 0;
- four AnimateDiff-style temporal modules (8 heads, one block of two self-attentions over time with
  sinusoidal positions over at most 32 frames, GEGLU feed-forward) on the projected features 3 and 4
  and after the first two fusion blocks.

Library classes compute the same maths (checked numerically by the team, reference notes "Library
components"): transformers' ``Dinov2Backbone`` (out_indices 3, 6, 9, 12: index 0 is the embedding
output), ``DepthAnythingNeck`` and ``DepthAnythingDepthEstimationHead``, and diffusers'
``AnimateDiffTransformer3D``. Written here, because no library class matches:

- ``FrameGroupNorm``: the reference normalises every frame alone ((b f) c h w); diffusers' module
  pools the statistics over frames. Same parameters, per-frame statistics.
- ``reference_pos_encoding``: the reference resizes the 37x37 position grid bicubically by
  ``scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37)``; transformers resizes to a target size,
  which differs away from 518x518 (0.16 on outputs of about 4 at 70x126, per the notes).
- the order of the neck's stages with the temporal modules between them (``VideoDepthAnything.forward``):
  the neck has no hook for them.

Shapes: ``frames`` (B, T, 3, H, W) float, ImageNet-normalised, H and W multiples of 14, T at most 32
(the sinusoidal table's length) -> depth (B, T, H, W) float, >= 0.
"""

from __future__ import annotations

import contextlib
import math
import os
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D
from torch import nn
from transformers import DepthAnythingConfig, Dinov2Backbone, Dinov2Config
from transformers.models.depth_anything.modeling_depth_anything import (
    DepthAnythingDepthEstimationHead,
    DepthAnythingNeck,
)

REPO = "depth-anything/Video-Depth-Anything-Small"
CHECKPOINT = "video_depth_anything_vits.pth"
LICENCE = "Apache-2.0"
PATCH = 14
POS_OFFSET = 0.1  # DINOv2's interpolate_offset, as the reference's ViT-S uses it


@dataclass(frozen=True)
class VdaArchitecture:
    """The sizes of a VDA model. ``SMALL`` is the published VDA-S; tests use tiny ones with the same
    structure (channels of the temporal modules must divide into 32 GroupNorm groups)."""

    hidden_size: int = 384
    layers: int = 12
    heads: int = 6  # DINOv2's head width is 64: hidden_size // 64
    image_size: int = 518  # the position grid: image_size / 14 per side (37)
    taps: tuple[int, ...] = (2, 5, 8, 11)  # zero-based blocks whose tokens the head takes
    out_channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    features: int = 64
    motion_heads: int = 8
    max_frames: int = 32

    @property
    def motion_channels(self) -> tuple[int, int, int, int]:
        """Channels of the four temporal modules: projected features 3 and 4, then fusion output x2."""
        return (self.out_channels[2], self.out_channels[3], self.features, self.features)


SMALL = VdaArchitecture()


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


class FrameGroupNorm(nn.GroupNorm):
    """GroupNorm over (B, C, T, H, W) with statistics per frame, as the reference's temporal module
    ((b f) c h w); ``nn.GroupNorm`` on the 5-D tensor would pool them over the frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            return super().forward(x)
        b, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
        out = F.group_norm(frames, self.num_groups, self.weight, self.bias, self.eps)
        return out.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4)


def reference_pos_encoding(position_embeddings: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The position embeddings (1, 1 + N*N, D) for an input of ``height`` x ``width`` pixels, resized
    as the reference's DINOv2 does: bicubic, no antialias, ``scale_factor`` = (patches + 0.1) / N per
    side; unchanged for a square input of the grid's own size."""
    num = position_embeddings.shape[1] - 1
    side = int(math.sqrt(num))
    rows, cols = height // PATCH, width // PATCH
    if rows * cols == num and rows == cols:
        return position_embeddings
    dtype = position_embeddings.dtype
    cls, grid = position_embeddings[:, :1], position_embeddings[:, 1:].float()
    grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
    scale = ((rows + POS_OFFSET) / side, (cols + POS_OFFSET) / side)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(grid.shape[-2:]) != (rows, cols):
        raise ValueError(f"the position grid resized to {tuple(grid.shape[-2:])}, not {(rows, cols)}")
    grid = grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
    return torch.cat([cls, grid.to(dtype)], dim=1)


def _interpolate_like_reference(
    self: nn.Module, embeddings: torch.Tensor, height: int, width: int
) -> torch.Tensor:
    """Replaces ``Dinov2Embeddings.interpolate_pos_encoding`` (bound to the backbone's embeddings)."""
    table = self.position_embeddings
    assert isinstance(table, torch.Tensor)
    return reference_pos_encoding(table, height, width)


class VideoDepthAnything(nn.Module):
    """VDA: DINOv2 backbone, DPT neck and head, four temporal modules (see the module docstring)."""

    def __init__(self, arch: VdaArchitecture = SMALL) -> None:
        super().__init__()
        self.arch = arch
        backbone = Dinov2Config(
            hidden_size=arch.hidden_size,
            num_hidden_layers=arch.layers,
            num_attention_heads=arch.heads,
            mlp_ratio=4,
            patch_size=PATCH,
            image_size=arch.image_size,
            layerscale_value=1.0,
            out_indices=[tap + 1 for tap in arch.taps],  # index 0 is the embedding output
            apply_layernorm=True,
            reshape_hidden_states=False,  # the neck's reassemble stage drops the class token itself
        )
        config = DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=arch.hidden_size,
            patch_size=PATCH,
            reassemble_factors=[4, 2, 1, 0.5],
            neck_hidden_sizes=list(arch.out_channels),
            fusion_hidden_size=arch.features,
            head_in_index=-1,
            head_hidden_size=32,
            depth_estimation_type="relative",
            max_depth=1,
        )
        self.backbone = Dinov2Backbone(backbone)
        self.backbone.embeddings.interpolate_pos_encoding = types.MethodType(
            _interpolate_like_reference, self.backbone.embeddings
        )
        self.neck = DepthAnythingNeck(config)
        self.head = DepthAnythingDepthEstimationHead(config)
        self.motion_modules = nn.ModuleList([self._motion_module(c) for c in arch.motion_channels])

    def _motion_module(self, channels: int) -> AnimateDiffTransformer3D:
        module = AnimateDiffTransformer3D(
            num_attention_heads=self.arch.motion_heads,
            attention_head_dim=channels // self.arch.motion_heads,
            in_channels=channels,
            num_layers=1,
            norm_num_groups=32,
            activation_fn="geglu",
            double_self_attention=True,
            positional_embeddings="sinusoidal",
            num_positional_embeddings=self.arch.max_frames,
        )
        module.norm = FrameGroupNorm(32, channels, eps=1e-6, affine=True)
        return module

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) normalised frames -> (B, T, H, W) relative inverse depth, >= 0."""
        b, t, _, height, width = frames.shape
        if height % PATCH or width % PATCH:
            raise ValueError(f"the input is {height}x{width}; both sides must be multiples of {PATCH}")
        if t > self.arch.max_frames:
            raise ValueError(
                f"{t} frames in one window; the temporal modules take at most {self.arch.max_frames}"
            )
        rows, cols = height // PATCH, width // PATCH
        # 1. Backbone: the tapped blocks' tokens (class token first), final LayerNorm applied.
        tokens = self.backbone(frames.flatten(0, 1)).feature_maps
        # 2. Neck: reassemble to four maps, temporal modules on maps 3 and 4, 3x3 convs.
        maps = self.neck.reassemble_stage(list(tokens), rows, cols)
        maps[2] = self.motion_modules[0](maps[2], num_frames=t)
        maps[3] = self.motion_modules[1](maps[3], num_frames=t)
        maps = [conv(x) for conv, x in zip(self.neck.convs, maps, strict=True)]
        # 3. Fusion from the coarsest map, temporal modules after the first two fusion blocks.
        fusion = self.neck.fusion_stage.layers
        path = fusion[0](maps[3], size=maps[2].shape[2:])
        path = self.motion_modules[2](path, num_frames=t)
        path = fusion[1](path, maps[2], size=maps[1].shape[2:])
        path = self.motion_modules[3](path, num_frames=t)
        path = fusion[2](path, maps[1], size=maps[0].shape[2:])
        path = fusion[3](path, maps[0])
        # 4. Head: 3x3 conv, bilinear (align_corners) to 14 x the grid, then conv, ReLU, 1x1 conv, ReLU
        #    in float32, as the reference runs its last part with autocast off.
        head = self.head
        out = F.interpolate(
            head.conv1(path), (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True
        )
        with _no_autocast(out.device):
            out = F.relu(_conv32(head.conv2, out.float()))
            depth = F.relu(_conv32(head.conv3, out))
        return depth.reshape(b, t, height, width)


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off where it exists (CUDA, CPU); nothing to switch elsewhere (meta)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _conv32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` applied in float32 whatever the module's dtype."""
    bias = conv.bias.float() if conv.bias is not None else None
    return F.conv2d(x, conv.weight.float(), bias, conv.stride, conv.padding)


# -- the published checkpoint's key layout ------------------------------------------------------------

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
