"""The GPU as the service sees it: is the asked-for device there, what is it, and what a CUDA error
means for the job and for the process.

- ``check_device(device)``: with ``cuda`` asked for and no CUDA device visible to torch, a
  ``DeviceUnavailableError`` saying what was seen (the NVIDIA driver's version, torch's CUDA
  version, torch's own reason) instead of running on the CPU at a thousandth of the speed.
- ``device_lines(device)``: card, memory, driver and CUDA versions, for the start-up log.
- ``slot_devices(device, slots)``: the devices of the conversion slots, one pipeline each: every
  visible GPU by default (``cuda:0`` … ``cuda:N-1``), or ``slots`` copies on the CPU (tests).
- ``classify(err)``: ``"oom"`` (this job needs less memory: the service frees it and goes on),
  ``"fatal"`` (a sticky error poisons the CUDA context: every later job would fail, so the service
  must be replaced) or ``None`` (anything else).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from stereocrafter.echo import bounded
from stereocrafter.errors import DeviceUnavailableError

# Sticky CUDA errors: once raised, every later CUDA call in the process fails the same way.
FATAL_MARKERS = (
    "illegal memory access",
    "illegal address",
    "misaligned address",
    "uncorrectable ecc error",
    "unspecified launch failure",
    "device-side assert",
    "an illegal instruction",
    "cuda error: unknown error",
    "device not ready",
    "hardware stop",
    "gpu has fallen off the bus",
    "cudaerrorlaunchfailure",
)
DRIVER_FILE = Path("/proc/driver/nvidia/version")


def default_device() -> str:
    """cuda when torch sees a GPU, else cpu: ``settings.load_settings``'s default."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def driver_version() -> str:
    """The NVIDIA kernel driver's version, from the driver itself (no CUDA call)."""
    try:
        text = DRIVER_FILE.read_text()
    except OSError:
        return (
            "none found (no /proc/driver/nvidia/version: no NVIDIA driver, or no GPU passed to the container)"
        )
    for word in text.split():
        if word.count(".") >= 1 and word.replace(".", "").isdigit():
            return word
    return text.strip().splitlines()[0][:120]


def check_device(device: str) -> None:
    """``DeviceUnavailableError`` when ``device`` is ``cuda`` and torch cannot use CUDA."""
    if device != "cuda":
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available() and torch.cuda.device_count() > 0
    if available:
        return
    why = " ".join(str(caught[0].message).split())[:300] if caught else "torch.cuda.is_available() is false"
    raise DeviceUnavailableError(
        f"STEREOCRAFTER_DEVICE=cuda but no CUDA device is usable: NVIDIA driver {driver_version()}, "
        f"torch {torch.__version__} built for CUDA {torch.version.cuda or 'none (a CPU build)'}; {why}"
    )


def device_lines(device: str) -> list[str]:
    """What the service runs on, one fact a line (logged at start-up)."""
    if device != "cuda" or not torch.cuda.is_available():
        return [f"device: {device} (torch {torch.__version__})"]
    lines = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        lines.append(f"cuda:{index}: {props.name}, {props.total_memory / 2**30:.1f} GiB")
    lines.append(
        f"NVIDIA driver {driver_version()}, torch {torch.__version__} with CUDA {torch.version.cuda}"
    )
    return lines


def slot_devices(device: str, slots: int | None, gpu_count: int | None = None) -> list[str]:
    """One device per conversion slot. ``cuda``: the first ``slots`` visible GPUs (all of them by
    default; more slots than GPUs is an error, two pipelines would share a card's memory).
    ``cpu``: ``slots`` (default 1) CPU pipelines. ``gpu_count`` is for tests."""
    if slots is not None and slots < 1:
        raise ValueError(f"STEREOCRAFTER_SLOTS must be >= 1, got {slots}")
    if device != "cuda":
        return ["cpu"] * (slots or 1)
    count = torch.cuda.device_count() if gpu_count is None else gpu_count
    if count < 1:
        check_device("cuda")  # says why, in detail
        raise DeviceUnavailableError("STEREOCRAFTER_DEVICE=cuda but no CUDA device is visible")
    if slots is not None and slots > count:
        raise DeviceUnavailableError(f"STEREOCRAFTER_SLOTS={slots} but only {count} GPUs are visible")
    return [f"cuda:{i}" for i in range(slots or count)]


def classify(err: BaseException) -> str | None:
    """``"oom"``, ``"fatal"`` or ``None`` for an exception raised by a job (see the module)."""
    if isinstance(err, torch.cuda.OutOfMemoryError):
        return "oom"
    text = str(err).lower()
    if "out of memory" in text and "cuda" in text:
        return "oom"
    if isinstance(err, RuntimeError | torch.AcceleratorError) and any(m in text for m in FATAL_MARKERS):
        return "fatal"
    return None


def release_memory() -> None:
    """Runs in the job's thread after every job. The collection walks only what the job made: the
    models and libraries were frozen out of the collector's reach after loading
    (``weights._freeze_heap``)."""
    import gc
    import logging

    gc.collect()
    if torch.cuda.is_available():
        try:
            torch.cuda.empty_cache()
        except RuntimeError as err:  # after a sticky CUDA error every call fails; already reported
            logging.getLogger("bentoml.stereocrafter.gpu").warning(
                "could not empty the CUDA cache: %s", bounded(str(err))
            )
