"""``stereocrafter doctor``: what this machine and its weights can do, in a few lines.

The same lines are logged by the service at start-up (SageMaker ships them to CloudWatch): the
device and library versions, whether the weights under ``WEIGHTS_DIR`` are complete (and real or
tiny test weights), every model with its licence and whether this endpoint loads it (the presets
of ``STEREOCRAFTER_PRESETS`` decide), the free GPU and host memory against what the preset needs,
whether the GPU's video encoder (NVENC) opens and which encoder ``STEREOCRAFTER_ENCODER`` gives, and
what a start-up download would fetch. Nothing here loads a model or touches the network (NVENC is
tried on one tiny frame).
"""

from __future__ import annotations

import os
from pathlib import Path

from stereocrafter.catalog import MODELS, models_of, needs_token, served_peak_gb
from stereocrafter.presets import DEFAULT_PRESET, PEAK_GPU_GB_1080P
from stereocrafter.settings import Settings


def _versions() -> str:
    import torch

    from stereocrafter.media.video_io import library_versions

    cuda = torch.version.cuda or "none"
    return f"torch {torch.__version__} (CUDA {cuda}), {library_versions()}"


def _device(settings: Settings) -> tuple[str, float | None]:
    """A line on the device, and the free GPU memory in GB (None without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return f"device: {settings.device} (no CUDA device visible)", None
    count = torch.cuda.device_count()
    free, total = torch.cuda.mem_get_info(0)
    name = torch.cuda.get_device_name(0)
    memory = f"{free / 1e9:.1f} of {total / 1e9:.1f} GB free"
    line = f"device: {settings.device}; {count} GPU(s), GPU 0 {name}, {memory}"
    return line, free / 1e9


def _host_memory_gb() -> float | None:
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        return None
    return None


def _weights(weights_dir: Path, presets: tuple[str, ...], list_missing: bool) -> list[str]:
    from stereocrafter.stages.components import is_tiny
    from stereocrafter.stages.registry import components_of

    components = components_of(presets)
    missing = [c for c in components if c.resolve(weights_dir) is None]
    if not missing:
        kind = "TINY RANDOM TEST WEIGHTS (outputs are noise)" if is_tiny(weights_dir) else "real weights"
        return [f"weights: complete under {weights_dir} for the presets served, {kind}"]
    lines = [f"weights: {len(missing)} of {len(components)} components missing under {weights_dir}"]
    if list_missing:
        lines += [f"  missing: {c.describe_missing()}" for c in missing]
    return lines


def _models(weights_dir: Path, presets: tuple[str, ...]) -> list[str]:
    """One line per model: its repo and licence, and which served presets load it (or none)."""
    from stereocrafter.stages.registry import model_components

    used = models_of(presets)
    lines = [f"presets served: {', '.join(presets)} (STEREOCRAFTER_PRESETS)"]
    for name, card in MODELS.items():
        if name not in used:
            lines.append(f"  model {name} ({card.repo or 'no repo'}), {card.licence}: not loaded "
                         "(no preset served uses it)")  # fmt: skip
            continue
        users = [p for p in presets if name in models_of((p,))]
        present = all(c.resolve(weights_dir) is not None for c in model_components(name))
        state = "weights present" if present else "WEIGHTS MISSING"
        if not model_components(name):
            state = "no weights to load"
        lines.append(f"  model {name} ({card.repo or 'no repo'}), {card.licence}: "
                     f"loaded for {', '.join(users)}; "
                     f"{state}")  # fmt: skip
    return lines


def _encoder(settings: Settings) -> list[str]:
    """Whether NVENC opens here, and what ``STEREOCRAFTER_ENCODER`` gives (or why it cannot)."""
    from stereocrafter.errors import EncoderUnavailableError
    from stereocrafter.media.encoders import choose_encoder, nvenc_lines

    try:
        chosen = (
            f"encoder: STEREOCRAFTER_ENCODER={settings.encoder} -> {choose_encoder(settings.encoder).label()}"
        )
    except EncoderUnavailableError as err:
        chosen = f"encoder: CANNOT START: {err.message}"
    return [*nvenc_lines(), chosen]


def _download(settings: Settings) -> str:
    from stereocrafter.serving.weights import download_plan

    plan = download_plan(settings.presets)
    files = sum(len(patterns) - 1 for patterns in plan.values())  # minus the test-weights marker
    repos = ", ".join(plan)
    if settings.hf_token_arn:
        return f"download at start-up: yes (HF_TOKEN_ARN set), {files} file patterns from {repos}"
    if not plan:
        return "download at start-up: nothing to download (the presets served need no weight file)"
    if not needs_token(settings.presets):
        return (f"download at start-up: what is missing, without a token (HF_TOKEN_ARN not set; every repo "
                f"of the presets served is public): {files} file patterns from {repos}")  # fmt: skip
    return f"download at start-up: no (HF_TOKEN_ARN not set); would fetch {files} file patterns from {repos}"


def diagnose(
    settings: Settings, weights_dir: Path | None = None, preset: str | None = None, list_missing: bool = False
) -> list[str]:
    """The report's lines (see the module docstring)."""
    preset = preset or settings.preset or DEFAULT_PRESET
    device_line, free_gpu = _device(settings)
    lines = [device_line, _versions()]
    root = Path(weights_dir or settings.weights_dir)
    lines += _weights(root, settings.presets, list_missing)
    lines += _models(root, settings.presets)
    resident, need = served_peak_gb(settings.presets)
    host = _host_memory_gb()
    host_text = f"{host:.1f} GB host memory available" if host is not None else "host memory unknown"
    if free_gpu is None:
        verdict = "no GPU: CPU conversions only (tiny weights, tests)"
    else:
        verdict = (
            "enough" if free_gpu >= need else "NOT ENOUGH for 1080p (use fast or turbo, or a bigger GPU)"
        )
    lines.append(
        f"memory: the served presets ({', '.join(settings.presets)}) keep {resident:.1f} GB of weights "
        f"resident and need about {need:.1f} GB of GPU memory at 1080p (preset {preset} alone: "
        f"{PEAK_GPU_GB_1080P[preset]:.1f} GB; counted by bench/flops.py, not the frame tensors); "
        f"{verdict}; {host_text}; {os.cpu_count()} CPUs"
    )
    lines += _encoder(settings)
    lines.append(_download(settings))
    return lines
