"""MI-GAN (``models.migan``; code and weights MIT, ``catalog.MODELS["migan"]``), the learned
licence-clean inpainting stage of ``clean``: frame by frame, on R x R tiles (R = 512 for the
published file) of the working size, only the tiles that hold a hole.

What the generator sees of a tile: the splatted right view with its holes unknown, and also
unknown every known pixel within ``FOREGROUND_BAND_PX`` of a hole that is nearer than what the
hole hides (its disparity more than ``fill.DISPARITY_TOLERANCE_PX`` above the hidden content's,
``stereo.fill.hole_sides``): a generic inpainter fills from both sides, and the foreground side is
the wrong one (``shared/reference/migan.md``). Its output is kept only inside the holes (the
published composition, with the true hole mask); the pipeline then merges it into the grown,
feathered holes at the source size (``stereo.merge``).

Tiles overlap by at least ``MIN_OVERLAP_PX`` wherever they meet (1024 px: three tiles at 0, 256 and
512; 576: two at 0 and 64) and are blended with feathered weights: across each overlap one tile's
weight falls linearly from 1 to 0 as the other's rises, so the weights sum to 1 and neither a hard
cut nor an unweighted mean of two independent fills shows as a step. A side shorter than R is
padded by edge replication (the padding is cropped off). All tiles with a hole of a chunk's frames
go through the generator together (``TILE_BATCH`` at a time); which tiles hold one is read back once
per chunk. Deterministic."""

from __future__ import annotations

import functools
import logging
import math
import os
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from stereocrafter.catalog import MIGAN_ONNX, MODELS
from stereocrafter.config import StereoConfig
from stereocrafter.models.migan import PUBLISHED, MiganGenerator, composite, load_migan, model_input
from stereocrafter.stages.base import StageCost, WarmupCall
from stereocrafter.stages.components import Component
from stereocrafter.stages.frames import FRAME_CHUNK, FrameStage
from stereocrafter.stereo.fill import DISPARITY_TOLERANCE_PX, hole_sides
from stereocrafter.stereo.merge import working_size
from stereocrafter.weights.integrity import digest, is_tiny
from stereocrafter.weights.manifest import MIGAN_PT

logger = logging.getLogger(__name__)

# The published ONNX pipeline, whose generator's tensors are converted to the state dict
# (``models.migan_onnx``); the authors' own ``.pt`` (``manifest.MIGAN_PT``) is taken instead when an
# operator put it in the repo's folder and its digest is the published one.
CHECKPOINT = Component("migan", MODELS["migan"].repo, ("",), MIGAN_ONNX)
CONVERTED = "migan_512_places2.from-onnx.safetensors"  # the conversion's cache, beside the ONNX file
FOREGROUND_BAND_PX = 8
TILE_BATCH = 32  # tiles per generator call (a chunk of 16 frames at 1080p has up to 96)
MIN_OVERLAP_PX = 32  # the least overlap of two tiles that meet


def tile_starts(size: int, tile: int, overlap: int = MIN_OVERLAP_PX) -> list[int]:
    """Where tiles of ``tile`` px start along a side of ``size`` px: one at 0 when it fits, else the
    fewest spread evenly from 0 to size - tile that overlap by at least ``overlap`` px."""
    if size <= tile:
        return [0]
    count = math.ceil((size - tile) / (tile - overlap - 1)) + 1
    return [round(i * (size - tile) / (count - 1)) for i in range(count)]


def tile_weights(starts: list[int], tile: int) -> list[torch.Tensor]:
    """Each tile's 1-d blending weight (tile,): 1 inside, a linear ramp across each overlap with a
    neighbour (up from its predecessor's end, down towards its successor's start); the ramps of two
    neighbours add up to 1 at every pixel of their overlap."""
    centre = torch.arange(tile, dtype=torch.float32) + 0.5
    out = []
    for i, start in enumerate(starts):
        weight = torch.ones(tile)
        if i > 0:
            weight = torch.minimum(weight, centre / (starts[i - 1] + tile - start))
        if i + 1 < len(starts):
            weight = torch.minimum(weight, (tile - centre) / (start + tile - starts[i + 1]))
        out.append(weight)
    return out


def context_mask(
    holes: torch.Tensor, disparity: torch.Tensor, band: int = FOREGROUND_BAND_PX
) -> torch.Tensor:
    """holes (t, 1, h, w) bool, disparity (t, 1, h, w) -> (t, 1, h, w) float, 1 = known to the
    generator: neither a hole nor foreground within ``band`` px of one (see the module docstring).
    A hole at the frame's border hides what continues its one side (``hole_sides``), so that side
    stays context. One frame (1, h, w) gives (1, h, w)."""
    if holes.ndim == 3:
        return context_mask(holes[None], disparity[None], band)[0]
    content = hole_sides(holes, disparity)[4]  # what each hole hides (its disparity)
    hidden = torch.where(holes, content, math.inf)
    nearest = -F.max_pool2d(-hidden, 2 * band + 1, stride=1, padding=band)  # inf: no hole near
    foreground = ~holes & (disparity > nearest + DISPARITY_TOLERANCE_PX)
    return (~holes & ~foreground).float()


@functools.cache
def _tile_flops() -> float:
    """FLOPs of one R x R tile through the published generator (counted once, on the meta device)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        generator = MiganGenerator(PUBLISHED).eval()
        tile = torch.empty(1, 4, PUBLISHED.resolution, PUBLISHED.resolution)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        generator(tile)
    return float(counter.get_total_flops())


def generator_file(root: Path) -> Path:
    """The state dict to load: the authors' ``.pt`` if verified, else the ONNX file's conversion
    (made now when its cache is absent or was made from other bytes; in a temporary folder when
    ``WEIGHTS_DIR`` is read-only). The cache names the ONNX digest it came from in its metadata.
    ``ValueError`` naming the tensor when the ONNX file is not MI-GAN's."""
    from stereocrafter.models.migan_onnx import cached_source, convert

    folder = root / CHECKPOINT.repo
    pt = folder / MIGAN_PT.path
    if pt.is_file():
        if digest(root, MIGAN_PT.key) == MIGAN_PT.sha256:
            logger.info("MI-GAN: the authors' %s (sha256 %s)", MIGAN_PT.path, MIGAN_PT.sha256)
            return pt
        logger.warning("MI-GAN: %s is not the authors' file (its digest differs): ignored", pt)
    source = digest(root, f"{CHECKPOINT.repo}/{MIGAN_ONNX}")
    cache = folder / CONVERTED
    if cache.is_file() and cached_source(cache) == source:
        return cache
    try:
        convert(folder / MIGAN_ONNX, cache, source)
    except OSError:  # a read-only WEIGHTS_DIR (model data placed by SageMaker): convert at each start
        import tempfile

        cache = Path(tempfile.mkdtemp(prefix="migan-")) / CONVERTED
        convert(folder / MIGAN_ONNX, cache, source)
    logger.info("MI-GAN: the generator converted from %s (sha256 %s) to %s (sha256 %s)", MIGAN_ONNX, source,
                cache, digest(cache.parent, cache.name))  # fmt: skip
    return cache


class MiganTiles(torch.nn.Module):
    """A chunk of frames through the generator, tile by tile (the module a job's progress counts)."""

    def __init__(self, generator: MiganGenerator) -> None:
        super().__init__()
        self.generator = generator

    @property
    def device(self) -> torch.device:
        return next(self.generator.parameters()).device

    def forward(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
        """view (t, 3, h, w), holes (t, 1, h, w) bool, disparity (t, 1, h, w) -> the filled view."""
        tile = self.generator.arch.resolution
        _, _, h, w = view.shape
        known = context_mask(holes, disparity)
        pad_h, pad_w = max(0, tile - h), max(0, tile - w)
        rgb, ctx, hole = view, known, holes.float()
        if pad_h or pad_w:
            pad = (0, pad_w, 0, pad_h)
            rgb, ctx, hole = (F.pad(x, pad, mode="replicate") for x in (rgb, ctx, hole))
        ys, xs = tile_starts(h + pad_h, tile), tile_starts(w + pad_w, tile)
        grid = [(y, x, wy, wx) for y, wy in zip(ys, tile_weights(ys, tile), strict=True)
                for x, wx in zip(xs, tile_weights(xs, tile), strict=True)]  # fmt: skip
        has_hole = torch.stack(
            [hole[:, :, y : y + tile, x : x + tile].amax((1, 2, 3)) for y, x, _, _ in grid]
        )
        boxes = [(f, *grid[g]) for g, f in (has_hole > 0).nonzero().tolist()]  # one read-back per chunk
        if not boxes:
            return view
        total = torch.zeros_like(rgb)
        weight = torch.zeros_like(hole)
        dtype = next(self.generator.parameters()).dtype
        for first in range(0, len(boxes), TILE_BATCH):
            batch = boxes[first : first + TILE_BATCH]
            crops = torch.stack([rgb[f, :, y : y + tile, x : x + tile] for f, y, x, _, _ in batch])
            masks = torch.stack([ctx[f, :, y : y + tile, x : x + tile] for f, y, x, _, _ in batch])
            generated = self.generator(model_input(crops, masks).to(dtype)).float()
            filled = composite(crops, masks, generated)
            for (f, y, x, wy, wx), part in zip(batch, filled, strict=True):
                feather = (wy[:, None] * wx[None, :]).to(part.device)
                total[f, :, y : y + tile, x : x + tile] += part * feather
                weight[f, :, y : y + tile, x : x + tile] += feather
        fills = (total / weight.clamp(min=1e-12))[:, :, :h, :w]
        return torch.where(holes & (weight[:, :, :h, :w] > 0), fills, view)


class MiganStage(FrameStage):
    """MI-GAN behind the inpainting-stage interface (``stages.base.InpaintingStage``)."""

    name: ClassVar[str] = "migan"
    components: ClassVar[tuple[Component, ...]] = (CHECKPOINT,)
    pipeline_type: ClassVar[type] = MiganTiles
    pipeline: MiganTiles

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> MiganStage:  # fmt: skip
        """The generator (float32; fp16 on CUDA): from the authors' ``.pt`` when it is there with its
        published digest, else from the converted ONNX pipeline (cached as safetensors beside it,
        reconverted when the cache was made from other bytes). The files were verified against the
        manifest before this runs (``pipeline.loading``)."""
        if is_tiny(weights_dir):
            logger.warning("%s holds tiny random test weights: MI-GAN fills are noise", weights_dir)
        generator = load_migan(generator_file(Path(weights_dir)), device=device, dtype=dtype)
        return cls(MiganTiles(generator))

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[WarmupCall]:
        """Every tile of a chunk's frames at the working size, in batches of ``TILE_BATCH`` (the
        published R = 512)."""
        h, w = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        r = PUBLISHED.resolution
        tiles = len(tile_starts(max(h, r), r)) * len(tile_starts(max(w, r), r))
        return [WarmupCall(MiganStage.name, 1, min(tiles * FRAME_CHUNK, TILE_BATCH), (r, r))]

    @staticmethod
    def cost(config: StereoConfig, frame_size: tuple[int, int]) -> StageCost:
        """Per frame at ``frame_size`` (height, width): every tile of the working size through the
        published generator (the worst case: a hole in each), its FLOPs counted on the meta
        device."""
        h, w = working_size(*frame_size, config.inpaint_max_res, config.inpaint_multiple)
        r = PUBLISHED.resolution
        tiles = len(tile_starts(max(h, r), r)) * len(tile_starts(max(w, r), r))
        one = _tile_flops()
        call = WarmupCall(MiganStage.name, 1, 1, (r, r))
        note = f"{w}x{h}: {tiles} tiles of {r}; the context mask, the blend and the merge are element-wise"
        return StageCost(tiles * one, ((call, one, float(tiles)),), note)

    @property
    def compiled(self) -> torch.nn.Module:
        generator: torch.nn.Module = self.pipeline.generator
        return generator

    def warm_up(self, call: WarmupCall) -> None:
        generator = self.pipeline.generator
        r = generator.arch.resolution  # the loaded file's (tiny test weights are smaller)
        dtype = next(generator.parameters()).dtype
        generator(torch.zeros(call.batch, 4, r, r, device=self.device, dtype=dtype))
