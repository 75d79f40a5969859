"""Build a ``StereoPipeline`` from ``WEIGHTS_DIR``: the stages of the presets served
(``stages.registry.stage_classes``), each loaded by its own ``load``, and nothing else: a
turbo-only endpoint never fetches or loads DepthCrafter. Which files each stage reads is its own
``components`` (``stages.components.Component``); the weight download takes its list from
``components_of`` for the same presets. Every missing file is reported at once, before anything
loads. No model is named here.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import WeightsCorruptError, WeightsMissingError
from stereocrafter.pipeline.compile import compile_models
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.stages.components import default_dtype, is_tiny
from stereocrafter.stages.registry import components_of, stage_classes

logger = logging.getLogger(__name__)


def missing_files(weights_dir: str | os.PathLike[str], presets: Sequence[str] = PRESET_NAMES) -> list[str]:
    """What ``presets``' stages need and ``weights_dir`` lacks, one line per component."""
    root = Path(weights_dir)
    return [c.describe_missing() for c in components_of(presets) if c.resolve(root) is None]


def _load(stage: Any, weights_dir: str | os.PathLike[str], device: torch.device, dtype: torch.dtype,
          shared: dict[str, Any]) -> Any:  # fmt: skip
    """One stage; a file its loader refuses (``ValueError``: a strict loader's missing or unknown
    key, a truncated file) is ``WeightsCorruptError`` naming the stage."""
    try:
        return stage.load(weights_dir, device=device, dtype=dtype, shared=shared)
    except ValueError as err:
        raise WeightsCorruptError(
            f"the {stage.name} weights under {weights_dir} are unusable: {err}"
        ) from err


def load_stereo_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    config: StereoConfig | None = None,
    compile_backend: str | None = None,
    presets: Sequence[str] = PRESET_NAMES,
) -> StereoPipeline:
    """The stages ``presets`` run, loaded on ``device`` (fp16 on CUDA, fp32 on CPU by default),
    sharing what they share (one copy of SVD's VAE and image encoder for both diffusion stages).
    ``compile_backend`` (e.g. "inductor"): ``pipeline.compile.compile_models`` before returning,
    warmed up for the served ``presets``."""
    missing = missing_files(weights_dir, presets)
    if missing:
        raise WeightsMissingError(missing, str(weights_dir))
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    shared: dict[str, Any] = {}  # what the stages share, loaded by the first that needs it
    depth, inpainting = (
        [_load(stage, weights_dir, device, dtype, shared) for stage in classes]
        for classes in stage_classes(presets)
    )
    pipeline = StereoPipeline(depth, inpainting, config, tiny=is_tiny(weights_dir), presets=presets)
    if compile_backend:
        started = time.perf_counter()
        calls = compile_models(pipeline, compile_backend, presets=presets)
        logger.info(
            "models compiled (%s) and warmed up on %d shapes in %.0f s",
            compile_backend,
            len(calls),
            time.perf_counter() - started,
        )
    return pipeline
