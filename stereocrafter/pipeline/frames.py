"""The frames of a clip as the stages ask for them: increasing, possibly overlapping index ranges
served from a one-pass iterator of decoded chunks, holding no more than the last request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from stereocrafter.pipeline.types import HostChunks


class SequentialFrames:
    """Serve increasing, possibly overlapping index ranges from a one-pass iterator of chunks.

    Keeps only the frames from the start of the last request on (a window or a chunk).
    ``transform`` maps each decoded uint8 chunk to what callers get (e.g. a float tensor).
    """

    def __init__(
        self, chunks: HostChunks, num_frames: int, transform: Callable[[Any], torch.Tensor],
        frame_size: tuple[int, int] | None = None,
    ) -> None:  # fmt: skip
        self._chunks, self._num_frames, self._transform = chunks, num_frames, transform
        self.frame_size = frame_size  # the source's (height, width) when ``transform`` resizes
        self._buffer: list[torch.Tensor] = []
        self._buffer_start = 0  # index of the first buffered frame
        self._buffered = 0

    def __len__(self) -> int:
        return self._num_frames

    def __getitem__(self, index: slice) -> torch.Tensor:
        start, stop = index.start or 0, min(index.stop, self._num_frames)
        if start < self._buffer_start:
            raise IndexError(f"frames before {self._buffer_start} were released (asked for {start})")
        while self._buffer_start + self._buffered < stop:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise ValueError(
                    f"the video ended after {self._buffer_start + self._buffered} frames; "
                    f"{self._num_frames} were expected"
                )
            tensor = self._transform(chunk)
            self._buffer.append(tensor)
            self._buffered += tensor.shape[0]
        frames = torch.cat(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        offset = start - self._buffer_start
        # Release what precedes this request: later requests never go back further.
        self._buffer, self._buffer_start, self._buffered = [frames[offset:]], start, frames.shape[0] - offset
        return frames[offset : offset + stop - start]
