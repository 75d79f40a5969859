"""Conversion slots: one ``StereoPipeline`` per GPU in the service's one process (``PoolLoader``
loads them; ``PipelinePool.job`` runs one job on a free slot with the GPU's set-up, error
classification and clean-up around it).

A job takes a free slot for its whole run and gives it back; the service admits as many jobs at
once as there are slots, so every GPU of an instance works. One process rather than one BentoML
worker per GPU, because BentoML's workers share one listening socket and the kernel hands a new
connection to whichever worker accepts first, busy or not: in a measured run with two workers and
pairs of concurrent requests, 10 pairs of 12 landed on the same worker, one job queued behind the
other while the second worker idled (docs/service.md, "One process, every GPU"). One process also downloads
the weights once and has one health state for ``/ping``.
"""

from __future__ import annotations

import logging
import queue
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from stereocrafter.echo import bounded
from stereocrafter.errors import DeviceUnavailableError, GpuFailedError, InsufficientGpuMemoryError
from stereocrafter.media.encoders import LIBX264, Encoder, choose_encoder
from stereocrafter.serving import metrics
from stereocrafter.serving.gpu import classify, release_memory, slot_devices
from stereocrafter.settings import Settings

logger = logging.getLogger("bentoml.stereocrafter.pool")


@dataclass(frozen=True)
class Slot:
    index: int
    device: str  # "cuda:2", "cpu"
    pipeline: Any  # StereoPipeline


class PipelinePool:
    def __init__(self, slots: list[Slot], encoder: Encoder = LIBX264) -> None:
        if not slots:
            raise ValueError("a pool needs at least one slot")
        self.slots = slots
        self.encoder = encoder  # every slot's video encoder (``media.encoders.choose_encoder``)
        self._free: queue.Queue[Slot] = queue.Queue()
        for slot in slots:
            self._free.put(slot)

    def __len__(self) -> int:
        return len(self.slots)

    @property
    def unavailable(self) -> dict[str, Any]:
        """The served presets that cannot run (every slot loaded the same files)."""
        return dict(getattr(self.slots[0].pipeline, "unavailable", {}))

    @property
    def ready_presets(self) -> list[str]:
        return list(getattr(self.slots[0].pipeline, "ready_presets", []))

    @contextmanager
    def acquire(self) -> Iterator[Slot]:
        """A free slot for the job (waits if none: the service admits no more jobs than slots)."""
        slot = self._free.get()
        try:
            yield slot
        finally:
            self._free.put(slot)

    def encoder_for(self, slot: Slot) -> Encoder:
        """The video encoder of ``slot``'s jobs: NVENC opens on the slot's own GPU."""
        return self.encoder.for_device(slot.device)

    @property
    def free(self) -> int:
        return self._free.qsize()

    @contextmanager
    def job(self, request_id: str, on_fatal: Callable[[str], None]) -> Iterator[Slot]:
        """A slot for one job, with everything a job on a GPU needs around it:

        - before: the slot's GPU becomes the thread's current device, its peak-memory count reset;
        - after success: the peak recorded (``metrics.PEAK_GPU_MEMORY``);
        - on an error (``gpu.classify``): out of memory is this job's problem, a 507
          ``InsufficientGpuMemoryError`` (the memory is freed and the service goes on); a sticky
          CUDA error poisons the context for every later job, so ``on_fatal(reason)`` marks the
          service failed and the job answers 503 ``GpuFailedError``; anything else passes through;
        - always: the job's memory released (``gpu.release_memory``), so the next job starts clean.
        """
        with self.acquire() as slot:
            on_gpu = slot.device.startswith("cuda")
            if on_gpu:
                torch.cuda.set_device(slot.device)  # this thread's current device: the slot's GPU
                torch.cuda.reset_peak_memory_stats(slot.device)
            try:
                yield slot
                if on_gpu:
                    metrics.PEAK_GPU_MEMORY.observe(torch.cuda.max_memory_allocated(slot.device))
            except Exception as err:
                kind = classify(err)
                if kind == "oom":  # this job's problem: the memory is freed below, the service goes on
                    logger.warning("request %s: out of GPU memory: %s", request_id, bounded(str(err)))
                    traceback.clear_frames(err.__traceback__)  # its frames hold the job's tensors
                    raise InsufficientGpuMemoryError(
                        "the GPU ran out of memory on this segment; it was freed and the service is up. "
                        "Try the fast preset (it inpaints at most 1024 px), a smaller tile_num, or a "
                        "shorter or smaller segment"
                    ) from None
                if kind == "fatal":  # the CUDA context is poisoned: every later job would fail too
                    reason = (
                        f"a CUDA error poisoned the GPU context ({bounded(str(err), 200)}); "
                        "replace this instance"
                    )
                    on_fatal(reason)
                    raise GpuFailedError(reason) from None
                raise
            finally:
                release_memory()


class PoolLoader:
    """The service's ``ModelHolder`` loader: one ``StereoPipeline`` per slot device
    (``gpu.slot_devices``, decided at construction, before any CUDA context), with fault injection
    when ``STEREOCRAFTER_FAULTS_FILE`` is set. A device problem found at construction is raised by
    ``load``, so the service starts and reports it on /ping."""

    def __init__(self, settings: Settings) -> None:
        from stereocrafter.weights.integrity import read_manifest

        self.settings = settings
        # an operator's manifest (STEREOCRAFTER_WEIGHTS_MANIFEST), read once: a bad one stops the start
        self.manifest = read_manifest(settings.weights_manifest)
        self.devices: list[str] = []
        self.error: DeviceUnavailableError | None = None
        try:
            self.devices = slot_devices(settings.device, settings.slots)
        except DeviceUnavailableError as err:
            self.error = err

    def load(self, weights_dir: Path) -> PipelinePool:
        from stereocrafter.config import StereoConfig
        from stereocrafter.pipeline.loading import load_stereo_pipeline
        from stereocrafter.serving.faults import Faults
        from stereocrafter.serving.gpu import check_device, device_lines

        settings = self.settings
        if self.error is not None:
            raise self.error
        check_device(settings.device)  # CUDA asked for and missing: failed, never the CPU
        for line in device_lines(settings.device):
            logger.info("gpu: %s", line)
        # Before the models: a named NVENC encoder this GPU lacks fails the start in milliseconds.
        encoder = choose_encoder(settings.encoder)
        logger.info("encoder: %s", encoder.label())
        config = StereoConfig.from_preset(settings.preset)  # the compile warm-up's window and chunk
        slots = []
        for index, device in enumerate(self.devices):
            pipeline = load_stereo_pipeline(
                weights_dir,
                device=device,
                config=config,
                compile_backend=settings.compile_backend,
                presets=settings.presets,  # only the models of the presets served
                manifest=self.manifest,
            )
            if settings.faults_file is not None:
                Faults(settings.faults_file).install(pipeline)
            slots.append(Slot(index, device, pipeline))
            logger.info("slot %d of %d loaded on %s", index + 1, len(self.devices), device)
        if settings.faults_file is not None:
            logger.warning("fault injection is on (STEREOCRAFTER_FAULTS_FILE=%s)", settings.faults_file)
        return PipelinePool(slots, encoder)
