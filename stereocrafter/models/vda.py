"""Video Depth Anything Small (VDA-S): the model, built from transformers' and diffusers' components
(its checkpoint: ``models.vda_checkpoint``; its windowed procedure: ``models.vda_depth``; the
``turbo`` preset's depth model).

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

The published checkpoint's key layout and its loading are ``models.vda_checkpoint``.

Shapes: ``frames`` (B, T, 3, H, W) float, ImageNet-normalised, H and W multiples of 14, T at most 32
(the sinusoidal table's length) -> depth (B, T, H, W) float, >= 0.
"""

from __future__ import annotations

import contextlib
import math
import types
from dataclasses import dataclass
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

from stereocrafter.bounds import VDA_PATCH
from stereocrafter.catalog import MODELS, VDA_CHECKPOINT

REPO = MODELS["vda-small"].repo
TAIL_FRAMES = 4  # frames per call of the per-frame tail (``VideoDepthAnything.forward``)
CHECKPOINT = VDA_CHECKPOINT
LICENCE = MODELS["vda-small"].licence
PATCH = VDA_PATCH  # 14: declared once, beside the bound it sets (``bounds``)
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
        # From here on every frame is its own (no temporal module): the last two fusion blocks and
        # the head run ``TAIL_FRAMES`` frames at a time, the same arithmetic per frame, so that the
        # full-resolution maps of one window (their float32 part above all) are not all alive at
        # once: at 518x924, 6.1 GB of activations for a window become 1.4 GB (bench/flops.py).
        parts = []
        for first in range(0, path.shape[0], TAIL_FRAMES):
            part = slice(first, first + TAIL_FRAMES)
            parts.append(self._tail(path[part], maps[1][part], maps[0][part], rows, cols))
        return torch.cat(parts).reshape(b, t, height, width)

    def _tail(
        self, path: torch.Tensor, map1: torch.Tensor, map0: torch.Tensor, rows: int, cols: int
    ) -> torch.Tensor:
        fusion = self.neck.fusion_stage.layers
        path = fusion[2](path, map1, size=map0.shape[2:])
        path = fusion[3](path, map0)
        # 4. Head: 3x3 conv, bilinear (align_corners) to 14 x the grid, then conv, ReLU, 1x1 conv, ReLU
        #    in float32, as the reference runs its last part with autocast off.
        head = self.head
        out = F.interpolate(
            head.conv1(path), (rows * PATCH, cols * PATCH), mode="bilinear", align_corners=True
        )
        del path
        with _no_autocast(out.device):
            out = F.relu(_conv32(head.conv2, out.float()))
            return F.relu(_conv32(head.conv3, out))[:, 0]


def _no_autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """Autocast switched off where it exists (CUDA, CPU); nothing to switch elsewhere (meta)."""
    if device.type in ("cuda", "cpu"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _conv32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv`` applied in float32 whatever the module's dtype."""
    bias = conv.bias.float() if conv.bias is not None else None
    return F.conv2d(x, conv.weight.float(), bias, conv.stride, conv.padding)
