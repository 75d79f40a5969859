"""``testing.scenes``: the long-video scene of known depth, and the depth stage that reads it back
with a random affine map per call (DepthCrafter's per-clip ambiguity)."""

from __future__ import annotations

import numpy as np
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.stages.registry import wrap_depth
from stereocrafter.testing.scenes import KnownDepth, render


def test_the_known_depth_stage_is_a_stage_that_distorts_each_call() -> None:
    frames, depths = render(8, 48, 64)
    assert frames.shape == (8, 48, 64, 3) and depths.shape[0] == 8 and np.isfinite(depths).all()
    stage = KnownDepth(seed=1)
    assert wrap_depth(stage) is stage and stage.name == "depthcrafter"
    clip = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255
    first = torch.cat([d for _, d in stage.iter_depth(clip, StereoConfig())])
    second = torch.cat([d for _, d in stage.iter_depth(clip, StereoConfig())])
    (a1, b1), (a2, b2) = stage.maps
    # both are affine maps of the blue channel, with different maps
    torch.testing.assert_close((first - b1) / a1, (second - b2) / a2, rtol=1e-5, atol=1e-5)
    assert (a1, b1) != (a2, b2)
