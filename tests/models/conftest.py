"""What the models family's tests share: Video Depth Anything Small at real size, seeded."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.models.vda import SMALL, VideoDepthAnything


@pytest.fixture(scope="module")
def small() -> VideoDepthAnything:
    torch.manual_seed(0)
    return VideoDepthAnything(SMALL).eval()
