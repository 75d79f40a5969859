"""Progress of a stage in frames, counted from its model's calls over the stage's own plan (the
depth model's windows, ``depth_stages``; ``models.inpainting.plan_chunks``), and the same hooks run
the job's stop check: after every model call and before every VAE decode."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

from stereocrafter.config import Progress, StereoConfig
from stereocrafter.models import inpainting as inpainting_stage


def no_progress(stage: str, done: int, total: int) -> None:
    pass


def inpainting_increments(chunks: list[inpainting_stage.Chunk], cfg: StereoConfig) -> list[float]:
    """Frames finished per inpainting-UNet call: each chunk's kept frames (the inpainting stage's
    plan, ``plan_chunks``) over steps x tiles."""
    calls = cfg.inpaint_steps * cfg.tile_num**2  # the guidance pair is one batched call
    return [(c.end - c.start - c.reused) / calls for c in chunks for _ in range(calls)]


class StageProgress:
    """Progress of one stage in frames, from its UNet's calls (a forward hook, no argument threaded
    through the stage; the same hook runs ``check``): each call advances the count by its share of
    the frames its window or chunk finishes, and every whole frame crossed is reported, from 0 at
    the stage's start (so a bar's clock is the stage's) to ``total`` at its end."""

    def __init__(
        self,
        report: Progress,
        stage: str,
        total: int,
        increments: list[float],
        check: Callable[[], None] | None = None,
    ) -> None:
        self.report, self.stage, self.total, self.check = report, stage, total, check
        self._increments = iter(increments)
        self._done, self._reported = 0.0, 0
        report(stage, 0, total)

    @contextmanager
    def watching(self, unet: torch.nn.Module, *checked: torch.nn.Module) -> Iterator[None]:
        """Hooks for the stage: progress and ``check`` after every ``unet`` call, ``check`` alone
        before every call of the ``checked`` modules (the VAE decoder, which runs after the last
        UNet call of a window or chunk: at 1080p a chunk's decode takes seconds)."""
        handles = [unet.register_forward_hook(self._after_call)]
        if self.check is not None:
            check = self.check
            handles += [module.register_forward_pre_hook(lambda *_: check()) for module in checked]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _after_call(self, *_: Any) -> None:
        if self.check is not None:
            self.check()  # e.g. the job's deadline: raising here stops the stage after this call
        self._done += next(self._increments, 0.0)
        self._emit(min(int(self._done + 1e-6), self.total))

    def _emit(self, upto: int) -> None:
        while self._reported < upto:
            self._reported += 1
            self.report(self.stage, self._reported, self.total)

    def finish(self) -> None:
        self._emit(self.total)


def decoders(stage: Any) -> list[torch.nn.Module]:
    """The VAE decoder of a diffusion stage (none for a stand-in depth stage without a VAE)."""
    vae = getattr(stage, "vae", None)
    return [vae.decoder] if vae is not None else []
