"""Which stage runs which model: one table per kind, keyed by the model's name (the config's
``depth_model`` and ``inpainting_model``, the ``catalog.MODELS`` card). In the service's path nothing
outside this module, the stage modules and the preset and catalog tables names a model (the
pipeline may not: ``.importlinter``).

A new stage is a sibling module of ``depthcrafter``/``vda``/``stereocrafter`` implementing
``stages.base.DepthStage`` or ``InpaintingStage``, one entry here, and its rows in
``presets.PRESETS`` and ``catalog.MODELS``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stereocrafter.catalog import DEPTH_MODELS, INPAINTING_MODELS, MODELS, SHARED, models_of
from stereocrafter.config import StereoConfig
from stereocrafter.stages.base import DepthStage, InpaintingStage, Stage
from stereocrafter.stages.components import Component
from stereocrafter.stages.depthcrafter import DepthCrafterStage
from stereocrafter.stages.fill import BackgroundFillStage
from stereocrafter.stages.migan import MiganStage
from stereocrafter.stages.stereocrafter import StereoCrafterStage
from stereocrafter.stages.vda import VdaStage

DEPTH_STAGES: dict[str, type[DepthStage]] = {
    DepthCrafterStage.name: DepthCrafterStage,
    VdaStage.name: VdaStage,
}
INPAINTING_STAGES: dict[str, type[InpaintingStage]] = {
    StereoCrafterStage.name: StereoCrafterStage,
    MiganStage.name: MiganStage,
    BackgroundFillStage.name: BackgroundFillStage,
}


def stage_classes(presets: Iterable[str]) -> tuple[list[type[DepthStage]], list[type[InpaintingStage]]]:
    """The depth stages and the inpainting stages the models of ``presets`` run
    (``catalog.models_of``), each in ``catalog.MODELS`` order."""
    names = models_of(presets)
    depth = [DEPTH_STAGES[name] for name in names if name in DEPTH_STAGES]
    inpainting = [INPAINTING_STAGES[name] for name in names if name in INPAINTING_STAGES]
    return depth, inpainting


def components_of(presets: Iterable[str]) -> tuple[Component, ...]:
    """The files the stages of ``presets`` read, each once: the stages that share parts first (the
    shared parts, then their own), then those that stand alone, each group in ``catalog.MODELS``
    order."""
    depth, inpainting = stage_classes(presets)
    order = list(MODELS)
    classes: list[type[Stage]] = sorted(
        [*depth, *inpainting], key=lambda stage: (stage.name not in SHARED, order.index(stage.name))
    )
    found: dict[str, Component] = {}
    for stage in classes:
        for component in stage.components:
            found.setdefault(f"{component.repo}/{component.name}", component)
    return tuple(found.values())


def model_components(name: str) -> tuple[Component, ...]:
    """The files of one ``catalog.MODELS`` model: every stage's components in its repo (SVD's are
    those the diffusion stages share)."""
    repo = MODELS[name].repo
    found: dict[str, Component] = {}
    for stage in [*DEPTH_STAGES.values(), *INPAINTING_STAGES.values()]:
        for component in stage.components:
            if component.repo == repo:
                found.setdefault(component.name, component)
    return tuple(found.values())


def check_registries() -> None:
    """Every depth and inpainting model of the catalog has its stage and every stage its card."""
    for kind, names, table in (
        ("depth", DEPTH_MODELS, DEPTH_STAGES),
        ("inpainting", INPAINTING_MODELS, INPAINTING_STAGES),
    ):
        if set(names) != set(table) or any(name not in MODELS for name in table):
            raise RuntimeError(f"the {kind} stages {sorted(table)} and the catalog's {sorted(names)} differ")


def wrap_depth(pipeline: Any) -> DepthStage:
    """The stage of a loaded depth pipeline (``DepthCrafterPipeline``, ``VdaDepthPipeline``); a
    stage (anything with ``DepthStage``'s members: ``stereocrafter/testing/scenes.py`` has one) as it is."""
    return _wrap(pipeline, DEPTH_STAGES, "depth", "iter_depth")  # type: ignore[no-any-return]


def wrap_inpainting(pipeline: Any) -> InpaintingStage:
    """The stage of a loaded inpainting pipeline; a stage as it is."""
    return _wrap(pipeline, INPAINTING_STAGES, "inpainting", "iter_inpaint")  # type: ignore[no-any-return]


def _wrap(pipeline: Any, table: Mapping[str, type[Any]], kind: str, runs: str) -> Any:
    if isinstance(getattr(pipeline, "name", None), str) and hasattr(pipeline, "warmup_calls"):
        return pipeline  # already a stage (a pipeline's own ``iter_*`` takes other arguments)
    for stage in table.values():
        if isinstance(pipeline, stage.pipeline_type):
            return stage(pipeline)
    raise TypeError(f"not a {kind} pipeline: {type(pipeline).__name__}")


def processing_size(height: int, width: int, config: StereoConfig) -> tuple[int, int]:
    """The raw depth's size for a ``height`` x ``width`` clip under ``config``'s depth stage (what
    a run keeps and a depth task stores)."""
    return DEPTH_STAGES[config.depth_model].processing_size(height, width, config)
