"""What the two chunk-by-chunk inpainting stages share (``background-fill``, ``migan``): chunks of
``FRAME_CHUNK`` frames with nothing reused, one call of their ``watched`` module per chunk (all its
frames at once: progress and the job's stop check after each), and the right view's disparity asked
of the source (``needs_disparity``) to tell a hole's background side from its foreground side."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.models.inpainting import Chunk
from stereocrafter.stages.base import HoleSource

FRAME_CHUNK = 16  # frames splatted per request of the source and filled per call


class FrameStage:
    """The base: ``per_chunk`` (an ``nn.Module`` called as ``per_chunk(view, holes, disparity)`` on
    a chunk's frames, (t, 3, h, w), (t, 1, h, w) bool, (t, 1, h, w), returning the filled
    (t, 3, h, w)) and ``start`` (called once per clip before its first chunk: a stage's memory of the
    clip starts empty)."""

    needs_disparity: ClassVar[bool] = True
    per_chunk: torch.nn.Module
    pipeline: Any  # the per-chunk module (a ``device`` property of its own)

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = self.per_chunk = pipeline

    @property
    def device(self) -> torch.device:
        device: torch.device = self.pipeline.device
        return device

    @staticmethod
    def plan(num_frames: int, config: StereoConfig) -> list[Chunk]:
        return [Chunk(i, min(i + FRAME_CHUNK, num_frames), 0) for i in range(0, num_frames, FRAME_CHUNK)]

    @staticmethod
    def increments(chunks: list[Chunk], config: StereoConfig) -> list[float]:
        return [float(chunk.end - chunk.start) for chunk in chunks]

    @property
    def watched(self) -> torch.nn.Module:
        return self.per_chunk

    @property
    def checked(self) -> list[torch.nn.Module]:
        return []

    def start(self) -> None:
        """A new clip begins."""

    def iter_inpaint(
        self, source: HoleSource, config: StereoConfig, generator: torch.Generator
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Chunk by chunk in order; ``generator`` is not used (both stages are deterministic)."""
        self.start()
        for chunk in self.plan(len(source), config):
            index = slice(chunk.start, chunk.end)
            view, occlusion = source[index]
            disparity = source.disparity(index)
            with torch.no_grad():
                filled = self.per_chunk(view, occlusion >= 0.5, disparity)
            yield chunk.start, filled
