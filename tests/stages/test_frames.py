"""The chunk-by-chunk stages' shared plan: chunks of 16 with nothing reused, one call per chunk
with all its frames, the source asked for its disparity, and a fresh start per clip."""

from __future__ import annotations

import torch

from stereocrafter.config import StereoConfig
from stereocrafter.stages.frames import FRAME_CHUNK, FrameStage


class _Source:
    def __init__(self, n: int) -> None:
        self.n, self.asked = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]:
        self.asked.append((index.start, index.stop))
        t = index.stop - index.start
        return torch.full((t, 3, 4, 6), float(index.start)), torch.zeros(t, 1, 4, 6)

    def disparity(self, index: slice) -> torch.Tensor:
        return torch.zeros(index.stop - index.start, 1, 4, 6)


class _Count(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, view, holes, disparity):  # type: ignore[no-untyped-def]
        self.calls += 1
        assert holes.dtype == torch.bool and holes.shape[0] == view.shape[0] == disparity.shape[0]
        return view + 1


def test_chunks_of_sixteen_each_frame_once_in_order() -> None:
    stage = FrameStage(_Count())
    chunks = stage.plan(37, StereoConfig())
    assert [(c.start, c.end, c.reused) for c in chunks] == [(0, 16, 0), (16, 32, 0), (32, 37, 0)]
    assert FRAME_CHUNK == 16 and stage.increments(chunks, StereoConfig()) == [16.0, 16.0, 5.0]
    source = _Source(37)
    out = list(stage.iter_inpaint(source, StereoConfig(), torch.Generator()))
    assert [start for start, _ in out] == [0, 16, 32] and source.asked == [(0, 16), (16, 32), (32, 37)]
    assert stage.per_chunk.calls == 3 and float(out[1][1][0, 0, 0, 0]) == 17.0
    assert [part.shape[0] for _, part in out] == [16, 16, 5]
    assert stage.watched is stage.per_chunk and stage.needs_disparity
