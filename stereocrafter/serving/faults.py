"""Fault injection for tests and drills: GPU failures that a CPU machine cannot produce, raised
where the real ones would be.

Off unless ``STEREOCRAFTER_FAULTS_FILE`` names a file. Each line of that file is one pending
fault; the next place that can raise it takes (removes) the first matching line:

- ``oom``: the next UNet evaluation raises ``torch.cuda.OutOfMemoryError`` (as CUDA's allocator);
- ``cuda_fatal``: the next UNet evaluation raises CUDA's sticky "illegal memory access" error;
- ``overflow``: the next VAE decoder call returns infinities (an fp16 overflow).

The service reads the file at every check, so a test or an operator can plant a fault into a
running server without restarting it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import torch

KINDS = ("oom", "cuda_fatal", "overflow")


class Faults:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def take(self, kind: str) -> bool:
        """True (and the line removed) when a ``kind`` fault is pending."""
        with self._lock:
            try:
                lines = self.path.read_text().splitlines()
            except OSError:
                return False
            if kind not in (line.strip() for line in lines):
                return False
            lines.pop([line.strip() for line in lines].index(kind))
            self.path.write_text("".join(f"{line}\n" for line in lines))
            return True

    def install(self, pipeline: Any) -> None:
        """Hooks on a ``StereoPipeline``'s models (every loaded depth stage's model and the
        inpainting UNet) and its (shared) VAE decoder."""

        def before_unet(*_: Any) -> None:
            if self.take("oom"):
                raise torch.cuda.OutOfMemoryError(
                    "CUDA out of memory. Tried to allocate 20.00 GiB (injected by STEREOCRAFTER_FAULTS_FILE)"
                )
            if self.take("cuda_fatal"):
                message = "CUDA error: an illegal memory access was encountered"
                raise torch.AcceleratorError(f"{message} (injected by STEREOCRAFTER_FAULTS_FILE)")

        def after_decoder(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            return torch.full_like(output, float("inf")) if self.take("overflow") else None

        models = [stage.watched for stage in pipeline.depth_stages.values()] + [pipeline.inpainting.unet]
        for model in {id(m): m for m in models}.values():
            model.register_forward_pre_hook(before_unet)
        pipeline.inpainting.vae.decoder.register_forward_hook(after_decoder)  # shared with DepthCrafter
