"""Progress of a stage in frames, counted from its model's calls over the stage's own plan (its
``increments``: a depth model's windows, an inpainting model's chunks), and the same hooks run the
job's stop check: after every model call and before every VAE decode."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from stereocrafter.guard import Stop
from stereocrafter.pipeline.types import Progress


def no_progress(stage: str, done: int, total: int) -> None:
    pass


class StageProgress:
    """Progress of one stage in frames, from its model's calls (a forward hook, no argument threaded
    through the stage; the same hook runs the job's ``stop.check()``): each call advances the count
    by its share of the frames its window or chunk finishes, and every whole frame crossed is
    reported, from 0 at the stage's start (so a bar's clock is the stage's) to ``total`` at its
    end."""

    def __init__(
        self,
        report: Progress,
        stage: str,
        total: int,
        increments: list[float],
        stop: Stop | None = None,
    ) -> None:
        self.report, self.stage, self.total, self.stop = report, stage, total, stop
        self._increments = iter(increments)
        self._done, self._reported = 0.0, 0
        report(stage, 0, total)

    @contextmanager
    def watching(self, unet: torch.nn.Module, *checked: torch.nn.Module) -> Iterator[None]:
        """Hooks for the stage: progress and the stop check after every ``unet`` call, the check alone
        before every call of the ``checked`` modules (the VAE decoder, which runs after the last
        UNet call of a window or chunk: at 1080p a chunk's decode takes seconds)."""
        handles = [unet.register_forward_hook(self._after_call)]
        if self.stop is not None:
            stop = self.stop
            handles += [module.register_forward_pre_hook(lambda *_: stop.check()) for module in checked]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _after_call(self, *_: Any) -> None:
        if self.stop is not None:
            self.stop.check()  # e.g. the job's deadline: raising here stops the stage after this call
        self._done += next(self._increments, 0.0)
        self._emit(min(int(self._done + 1e-6), self.total))

    def _emit(self, upto: int) -> None:
        while self._reported < upto:
            self._reported += 1
            self.report(self.stage, self._reported, self.total)

    def finish(self) -> None:
        self._emit(self.total)
