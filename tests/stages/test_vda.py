"""``stages.vda``: Video Depth Anything Small behind the depth-stage interface: its windows, its
progress, its depth streamed window by window."""

from __future__ import annotations

import numpy as np
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from tests.support.stops import Calls


def test_the_vda_stage_streams_its_depth_with_progress(vda_pipeline, inpainting_pipeline) -> None:
    """40 frames through the VDA stage: raw depth at its processing size, progress per window,
    the stop check after every model call."""
    pipeline = StereoPipeline(vda_pipeline, inpainting_pipeline)
    config = StereoConfig.from_preset("turbo", depth_input_size=28)
    frames = (np.random.default_rng(0).random((40, 48, 64, 3)) * 255).astype(np.uint8)
    reported: list[int] = []
    checks: list[int] = []
    hooks = RunHooks(
        progress=lambda _, done, __: reported.append(done), stop=Calls(lambda: checks.append(reported[-1]))
    )
    raw = pipeline.depth_pass(lambda: iter([frames[:16], frames[16:]]), num_frames=40, width=64, height=48,
                              config=config, hooks=hooks)  # fmt: skip
    assert raw.shape == (40, 1, 28, 42) and raw.dtype == torch.float32 and bool((raw >= 0).all())
    assert reported == list(range(41))
    # one check after each window's model call (0-31, then 22-53 padded), when the frames before
    # it are reported: the first window finishes frames 0-23 (its last 8 wait for the blend)
    assert checks == [0, 24]


def test_the_stage_sizes_its_windows_and_warm_up_as_the_published_procedure() -> None:
    from stereocrafter.stages.base import WarmupCall
    from stereocrafter.stages.vda import VdaStage

    turbo = StereoConfig.from_preset("turbo")
    assert VdaStage.processing_size(1080, 1920, turbo) == (518, 924)
    assert VdaStage.increments(100, turbo) == [24.0, 22.0, 22.0, 22.0, 10.0]
    assert VdaStage.warmup_calls(turbo, (1080, 1920)) == [WarmupCall("vda-small", 32, 1, (518, 924))]
    assert VdaStage.components[0].name == "vda" and VdaStage.name == "vda-small"
