"""The ``instant`` preset's inpainting stage in the pipeline: no file read, every hole of the right
view filled, the splat kept outside the grown holes, and the clip's memory started afresh per run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.stages.fill import BackgroundFillStage
from stereocrafter.stages.registry import components_of
from stereocrafter.stereo.merge import hole_weights
from stereocrafter.testing.media import scene_frames


class _Keep:
    def __init__(self) -> None:
        self.occlusion: list[torch.Tensor] = []
        self.right: list[torch.Tensor] = []

    def on_start(self, **_: object) -> None:
        pass

    def on_frames(self, start, left, depth, occlusion, right) -> None:  # type: ignore[no-untyped-def]
        self.occlusion.append(occlusion.clone())
        self.right.append(right.clone())


def test_instant_fills_every_hole_and_keeps_the_splat_elsewhere(tiny_weights: Path) -> None:
    assert components_of(["instant"]) == components_of(["instant"])[:1]  # VDA-S's file only
    pipeline = load_stereo_pipeline(tiny_weights, presets=("instant",))
    stage = pipeline.inpainting_stages["background-fill"]
    assert isinstance(stage, BackgroundFillStage) and stage.components == ()
    config = StereoConfig.from_preset("instant", depth_input_size=28, max_disp=8.0)
    frames = scene_frames(20, 96, 64)
    keep, grids, out = _Keep(), [], []
    hooks = RunHooks(observer=keep, grid_sink=grids.append)
    pipeline.run(lambda: iter([frames]), out.append, num_frames=20, width=96, height=64, mode="sbs",
                 config=config, hooks=hooks)  # fmt: skip
    occlusion, right = torch.cat(keep.occlusion), torch.cat(keep.right)
    holes = (occlusion >= 0.5).expand(-1, 3, -1, -1)
    assert int(holes.sum()) > 0
    warped = torch.from_numpy(np.concatenate(grids)[:, 64:, 96:]).permute(0, 3, 1, 2).float() / 255
    empty = (occlusion > 0.999).expand(-1, 3, -1, -1)  # nothing landed: the splat is black there
    assert int(empty.sum()) > 0 and float((warped[empty] > 0.05).float().mean()) < 0.01
    assert float(right[empty].mean()) > 0.1  # and the fill is not
    outside = hole_weights(occlusion, config.hole_dilate_px, config.hole_feather_px) == 0
    outside = outside.expand(-1, 3, -1, -1)
    assert float((right[outside] - warped[outside]).abs().max()) <= 1 / 255 + 1e-6  # the grid is 8-bit
    first = stage.pipeline.memory
    pipeline.run(lambda: iter([frames]), lambda _: None, num_frames=20, width=96, height=64, config=config)
    assert stage.pipeline.memory is not first  # each clip starts with an empty memory


def test_the_fill_states_no_flops_and_says_why() -> None:
    cost = BackgroundFillStage.cost(StereoConfig.from_preset("instant"), (1080, 1920))
    assert cost.flops_per_frame == 0.0 and cost.calls == () and "element-wise" in cost.note
