"""``torch.compile`` of the loaded stages, warmed up on the calls the served presets make: each
stage says what it compiles (``compiled``), which calls a job of a preset makes at a size
(``warmup_calls``) and how to make one (``warm_up``). No model is named here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.stages.base import WarmupCall
from stereocrafter.stages.registry import DEPTH_STAGES, INPAINTING_STAGES

if TYPE_CHECKING:
    from stereocrafter.pipeline.run import StereoPipeline


def warmup_calls(presets: Sequence[str], frame_size: tuple[int, int]) -> list[WarmupCall]:
    """The distinct model calls that jobs of ``presets`` make on a ``frame_size`` (height, width)
    clip long enough for full windows: each preset's depth window at its processing size and its
    inpainting chunk at its working size, as its stages say (``warmup_calls``): the shapes
    ``StereoPipeline.run`` gives these models."""
    calls: list[WarmupCall] = []
    for preset in presets:
        cfg = StereoConfig.from_preset(preset)
        found = DEPTH_STAGES[cfg.depth_model].warmup_calls(cfg, frame_size)
        found += INPAINTING_STAGES[cfg.inpainting_model].warmup_calls(cfg, frame_size)
        calls += [call for call in found if call not in calls]
    return calls


def compile_models(
    pipeline: StereoPipeline,
    backend: str = "inductor",
    *,
    presets: Sequence[str] = PRESET_NAMES,
    warmup_size: tuple[int, int] | None = (576, 1024),
) -> list[WarmupCall]:
    """``torch.compile`` every loaded stage's model that runs per window or chunk, in place
    (``nn.Module.compile``): whichever stages are loaded (a turbo-only endpoint has no
    DepthCrafter). With ``warmup_size``, each served preset's calls at that frame size
    (``warmup_calls``) run once now, while ``/ping`` says 503, so that the first request of each
    preset at that size does not compile. Another size, or a preset's last, shorter window,
    compiles on its first use; from the second distinct shape on, torch compiles one graph with
    dynamic sizes (its automatic dynamic shapes) instead of one per shape. Returns the calls warmed
    up."""
    stages = {stage.name: stage for stage in pipeline.stages}
    for stage in stages.values():
        stage.compiled.compile(backend=backend)
    if warmup_size is None:
        return []
    calls = [c for c in warmup_calls(presets, warmup_size) if c.model in stages]
    with torch.no_grad():
        for call in calls:
            stages[call.model].warm_up(call)
    return calls
