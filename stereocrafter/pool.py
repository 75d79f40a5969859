"""Conversion slots: one ``StereoPipeline`` per GPU in the service's one process.

A job takes a free slot for its whole run and gives it back; the service admits as many jobs at
once as there are slots, so every GPU of an instance works. One process rather than one BentoML
worker per GPU, because BentoML's workers share one listening socket and the kernel hands a new
connection to whichever worker accepts first, busy or not: in a measured run with two workers and
pairs of concurrent requests, 10 pairs of 12 landed on the same worker, one job queued behind the
other while the second worker idled (README "One process, every GPU"). One process also downloads
the weights once and has one health state for ``/ping``.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Slot:
    index: int
    device: str  # "cuda:2", "cpu"
    pipeline: Any  # StereoPipeline


class PipelinePool:
    def __init__(self, slots: list[Slot]) -> None:
        if not slots:
            raise ValueError("a pool needs at least one slot")
        self.slots = slots
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self._free.put(slot)

    def __len__(self) -> int:
        return len(self.slots)

    @contextmanager
    def acquire(self) -> Iterator[Slot]:
        """A free slot for the job (waits if none: the service admits no more jobs than slots)."""
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    @property
    def free(self) -> int:
        return self._free.qsize()
