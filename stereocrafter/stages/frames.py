"""What the two frame-by-frame inpainting stages share (``background-fill``, ``migan``): chunks of
``FRAME_CHUNK`` frames with nothing reused, one call of their ``watched`` module per frame (progress
and the job's stop check after each), and the right view's disparity asked of the source
(``needs_disparity``) to tell a hole's background side from its foreground side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.models.inpainting import Chunk
from stereocrafter.stages.base import HoleSource

FRAME_CHUNK = 16  # frames splatted per request of the source (the fill itself goes frame by frame)


class FrameStage:
    """The base: ``per_frame`` (an ``nn.Module`` called as ``per_frame(view, holes, disparity)`` on
    one frame, (3, h, w), (1, h, w) bool, (1, h, w), returning the filled (3, h, w)) and ``start``
    (called once per clip before its first frame: a stage's memory of the clip starts empty)."""

    needs_disparity: ClassVar[bool] = True
    per_frame: torch.nn.Module
    pipeline: Any  # the per-frame module (a ``device`` property of its own)

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = self.per_frame = pipeline

    @property
    def device(self) -> torch.device:
        device: torch.device = self.pipeline.device
        return device

    @staticmethod
    def plan(num_frames: int, config: StereoConfig) -> list[Chunk]:
        return [Chunk(i, min(i + FRAME_CHUNK, num_frames), 0) for i in range(0, num_frames, FRAME_CHUNK)]

    @staticmethod
    def increments(chunks: list[Chunk], config: StereoConfig) -> list[float]:
        return [1.0 for chunk in chunks for _ in range(chunk.end - chunk.start)]

    @property
    def watched(self) -> torch.nn.Module:
        return self.per_frame

    @property
    def checked(self) -> list[torch.nn.Module]:
        return []

    def start(self) -> None:
        """A new clip begins."""

    def prepare(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> None:
        """A chunk's frames, (t, 3, h, w), (t, 1, h, w) bool, (t, 1, h, w), before its frames are
        filled one by one (the fill looks ahead in them)."""

    def iter_inpaint(
        self, source: HoleSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Chunk by chunk, frame by frame in order; ``generator`` is not used (both stages are
        deterministic)."""
        self.start()
        for chunk in self.plan(len(source), config):
            index = slice(chunk.start, chunk.end)
            view, occlusion = source[index]
            disparity = source.disparity(index)
            holes = occlusion >= 0.5
            self.prepare(view, holes, disparity)
            with torch.no_grad():
                filled = [self.per_frame(view[i], holes[i], disparity[i]) for i in range(view.shape[0])]
            yield chunk.start, torch.stack(filled)
