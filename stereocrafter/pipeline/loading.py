"""Build a ``StereoPipeline`` from ``WEIGHTS_DIR``: the stages of the presets served
(``stages.registry.stage_classes``), each loaded by its own ``load``, and nothing else: a
turbo-only endpoint never fetches or loads DepthCrafter. Which files each stage reads is its own
``components`` (``stages.components.Component``); what is downloaded and verified is the weights
manifest's files of the same models (``weights.manifest``, ``serving.weights.download_plan``). Every
missing file is reported at once, before anything loads. No model is named here.

Before anything loads, every weight file is checked against the weights manifest (``integrity``):
one model that is missing, corrupt or refused by its loader takes down only the presets that run it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stereocrafter.catalog import MODELS, SHARED, models_of, models_with_files
from stereocrafter.config import StereoConfig
from stereocrafter.errors import PresetUnavailableError, WeightsCorruptError, WeightsMissingError
from stereocrafter.pipeline.compile import compile_models
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.stages.components import default_dtype
from stereocrafter.stages.registry import components_of, stage_classes
from stereocrafter.weights.integrity import ModelCheck, is_tiny, verify_models
from stereocrafter.weights.manifest import WeightFile

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unavailable:
    """Why a served preset cannot run here: the model it needs, and whether that model's files are
    ``missing``, ``corrupt`` (differ from the manifest, or its loader refused them) or ``failed``."""

    preset: str
    model: str
    state: str
    detail: str

    def error(self, ready: Sequence[str]) -> PresetUnavailableError:
        """The 503 a request for this preset gets: which model, why, what to do, what works here."""
        card = MODELS[self.model]
        todo = {
            "missing": "put its verified files in WEIGHTS_DIR (`stereocrafter doctor` lists them), set "
            "HF_TOKEN_ARN, or deploy from an S3 mirror of the weights (weights-mirror)",
            "corrupt": "replace the file with the published one (`stereocrafter doctor` names it)",
        }.get(self.state, "the service log has the reason")
        others = f"; ready here: {', '.join(ready)}" if ready else ""
        return PresetUnavailableError(
            f"the preset {self.preset} cannot run on this endpoint: its model {self.model} ({card.repo}) is "
            f"{self.state}: {self.detail}. To serve it, {todo}{others}"
        )


def check_weights(
    weights_dir: str | os.PathLike[str],
    presets: Sequence[str] = PRESET_NAMES,
    manifest: Sequence[WeightFile] | None = None,
) -> dict[str, ModelCheck]:
    """Every weight file of the models ``presets`` run, against the manifest (``integrity``)."""
    return verify_models(weights_dir, models_with_files(presets), manifest)


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
    manifest: Sequence[WeightFile] | None = None,
) -> StereoPipeline:
    """The stages ``presets`` run, loaded on ``device`` (fp16 on CUDA, fp32 on CPU by default),
    sharing what they share (one copy of SVD's VAE and image encoder for both diffusion stages).

    Every weight file is checked against the manifest first (``integrity.verify_models``): a model
    whose files are missing or differ is never loaded, and neither is one whose loader refuses its
    file. Only the presets that run such a model become unavailable (``StereoPipeline.unavailable``,
    a 503 naming the model for a request); when no served preset is left, ``WeightsMissingError`` or
    ``WeightsCorruptError`` says why. ``compile_backend`` (e.g. "inductor"):
    ``pipeline.compile.compile_models`` before returning, warmed up for the presets that loaded."""
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    broken: dict[str, tuple[str, str]] = {}
    weights: dict[str, dict[str, str]] = {}  # model -> {file: SHA-256}, for the records
    for name, check in check_weights(weights_dir, presets, manifest).items():
        if check.state != "ok":
            broken[name] = (check.state, check.message)
        else:
            weights[name] = check.files
    shared: dict[str, Any] = {}  # what the stages share, loaded by the first that needs it
    loaded: list[list[Any]] = [[], []]
    depth_classes, inpainting_classes = stage_classes(presets)
    kinds: list[list[Any]] = [list(depth_classes), list(inpainting_classes)]
    for kind, classes in enumerate(kinds):
        for stage in classes:
            needs = [stage.name, *SHARED.get(stage.name, ())]
            if any(model in broken for model in needs):
                continue
            try:
                loaded[kind].append(_load(stage, weights_dir, device, dtype, shared))
            except (WeightsCorruptError, WeightsMissingError) as err:
                logger.error("%s not loaded: %s", stage.name, err.message)
                broken[stage.name] = (
                    "corrupt" if isinstance(err, WeightsCorruptError) else "missing",
                    err.message,
                )
    unavailable: dict[str, Unavailable] = {}
    for preset in presets:
        model = next((m for m in models_of((preset,)) if m in broken), None)
        if model is not None:
            unavailable[preset] = Unavailable(preset, model, *broken[model])
    ready = [p for p in presets if p not in unavailable]
    if not ready:
        states = {state for state, _ in broken.values()}
        details = [f"{model}: {detail}" for model, (_, detail) in broken.items()]
        if states == {"missing"}:
            raise WeightsMissingError(missing_files(weights_dir, presets) or details, str(weights_dir))
        raise WeightsCorruptError(f"no preset of {', '.join(presets)} can run here: {'; '.join(details)}")
    for preset, why in unavailable.items():
        logger.error("preset %s unavailable: %s %s: %s", preset, why.model, why.state, why.detail)
    pipeline = StereoPipeline(
        loaded[0],
        loaded[1],
        config,
        tiny=is_tiny(weights_dir),
        presets=presets,
        unavailable=unavailable,
        weights={name: files for name, files in weights.items() if name not in broken},
    )
    if compile_backend:
        started = time.perf_counter()
        calls = compile_models(pipeline, compile_backend, presets=ready)
        logger.info(
            "models compiled (%s) and warmed up on %d shapes in %.0f s",
            compile_backend,
            len(calls),
            time.perf_counter() - started,
        )
    return pipeline
