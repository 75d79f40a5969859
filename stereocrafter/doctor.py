"""``stereocrafter doctor``: what this machine and its weights can do, in a few lines.

The same lines are logged by the service at start-up (SageMaker ships them to CloudWatch): the
device and library versions, whether the weights under ``WEIGHTS_DIR`` are complete and match the
weights manifest (and real or tiny test weights), which served presets this machine can run, every
model with its licence and whether this endpoint loads it (the presets
of ``STEREOCRAFTER_PRESETS`` decide), the free GPU and host memory against what the preset needs,
whether the GPU's video encoder (NVENC) opens and which encoder ``STEREOCRAFTER_ENCODER`` gives, and
what a start-up download would fetch. Nothing here loads a model or touches the network (NVENC is
tried on one tiny frame).
"""

from __future__ import annotations

import os
from pathlib import Path

from stereocrafter.catalog import MODELS, models_of, models_with_files, needs_token, served_peak_gb
from stereocrafter.presets import DEFAULT_PRESET, PEAK_GPU_GB_1080P
from stereocrafter.settings import Settings


def _versions() -> str:
    import torch

    from stereocrafter.jobs.provenance import code_identity
    from stereocrafter.media.video_io import library_versions

    cuda, code = torch.version.cuda or "none", code_identity()
    return (f"code {code['version']} (sources {code['sources'][:12]}, named in every record); "
            f"torch {torch.__version__} (CUDA {cuda}), {library_versions()}")  # fmt: skip


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


def _weights(
    settings: Settings, root: Path, list_missing: bool, digests: bool
) -> tuple[list[str], list[str], dict[str, str]]:
    """The weights against the manifest: one summary line, which presets can run here, (``list_missing``)
    the manifest with what was found for each file, and each model's state. ``digests`` False: sizes
    only (the start-up log; the load checks every digest), True: every file hashed once (its stamp
    kept), nothing recorded."""
    from stereocrafter.weights.integrity import (
        LOCK_NAME,
        check_file,
        expected_rows,
        is_tiny,
        read_manifest,
        verify_models,
    )

    presets = settings.presets
    manifest = read_manifest(settings.weights_manifest)
    models = models_with_files(presets)
    checks = verify_models(root, models, manifest, digests=digests, record=False)
    rows = expected_rows(root, models, manifest)
    states = {row.key: check_file(root, row, digests) for row in rows}
    missing = [key for key, (state, _, _) in states.items() if state == "missing"]
    differ = [sentence for state, sentence, _ in states.values() if state == "corrupt"]
    how = "digests checked" if digests else "sizes checked; the service checks every digest before it loads"
    if not missing and not differ:
        kind = "TINY RANDOM TEST WEIGHTS (outputs are noise)" if is_tiny(root) else "real weights"
        lines = [f"weights: complete under {root} for the presets served ({len(rows)} files, {how}), {kind}"]
    else:
        lines = [f"weights: {len(missing)} of {len(rows)} files missing, {len(differ)} differing from the "
                 f"manifest under {root} ({how})"]  # fmt: skip
    if list_missing:
        lines += [f"  missing: {key}" for key in missing] + [f"  DIFFERS: {sentence}" for sentence in differ]
    down = {m: c for m, c in checks.items() if c.state != "ok"}
    runnable = [p for p in presets if not any(m in down for m in models_of((p,)))]
    blocked = [f"{p} ({', '.join(f'{m} {down[m].state}' for m in models_of((p,)) if m in down)})"
               for p in presets if p not in runnable]  # fmt: skip
    lines.append(f"presets this machine can run: {', '.join(runnable) or 'none'}"
                 + (f"; not: {', '.join(blocked)}" if blocked else ""))  # fmt: skip
    listing: list[str] = []
    if list_missing:
        basis = (f"STEREOCRAFTER_WEIGHTS_MANIFEST={settings.weights_manifest}" if manifest is not None
                 else f"the tiny weights' own record ({LOCK_NAME})" if is_tiny(root)
                 else f"the published one (weights/manifest.py), {LOCK_NAME} for the rest")  # fmt: skip
        listing.append(f"manifest: {basis}")
        for row in rows:
            revision = row.revision or "not pinned (locked at the first download)"
            size = f"{row.size:,} B" if row.size is not None else "size recorded at first use"
            digest = f"sha256 {row.sha256}" if row.sha256 else "sha256 recorded at first use"
            listing.append(f"  {row.key} @ {revision}: {size}, {digest}: {states[row.key][0]}")
    return lines, listing, {m: c.state for m, c in checks.items()}


def _models(weights_dir: Path, presets: tuple[str, ...], checks: dict[str, str]) -> list[str]:
    """One line per model: its repo and licence, and which served presets load it (or none)."""
    used = models_of(presets)
    lines = [f"presets served: {', '.join(presets)} (STEREOCRAFTER_PRESETS)"]
    for name, card in MODELS.items():
        if name not in used:
            lines.append(f"  model {name} ({card.repo or 'no repo'}), {card.licence}: not loaded "
                         "(no preset served uses it)")  # fmt: skip
            continue
        users = [p for p in presets if name in models_of((p,))]
        state = {
            "ok": "weights present",
            "missing": "WEIGHTS MISSING",
            "corrupt": "WEIGHTS DIFFER FROM THE MANIFEST",
        }
        text = state[checks[name]] if card.repo else "no weights to load"
        lines.append(f"  model {name} ({card.repo or 'no repo'}), {card.licence}: "
                     f"loaded for {', '.join(users)}; "
                     f"{text}")  # fmt: skip
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
    files = sum(len(rows) for rows in plan.values())
    repos = ", ".join(plan)
    if settings.hub_offline:
        return "download at start-up: no (HF_HUB_OFFLINE is set): the weights must be in WEIGHTS_DIR"
    if settings.hf_token_arn:
        return f"download at start-up: yes (HF_TOKEN_ARN set), {files} pinned files from {repos}"
    if not plan:
        return "download at start-up: nothing to download (the presets served need no weight file)"
    if not needs_token(settings.presets):
        return (f"download at start-up: what is missing, without a token (HF_TOKEN_ARN not set; every repo "
                f"of the presets served is public): {files} pinned files from {repos}")  # fmt: skip
    return f"download at start-up: no (HF_TOKEN_ARN not set); would fetch {files} pinned files from {repos}"


def diagnose(
    settings: Settings,
    weights_dir: Path | None = None,
    preset: str | None = None,
    list_missing: bool = False,
    digests: bool = False,
) -> list[str]:
    """The report's lines (see the module docstring). ``list_missing``: every missing or differing file
    and the manifest with what was found; ``digests``: every file hashed (``stereocrafter doctor``)."""
    preset = preset or settings.preset or DEFAULT_PRESET
    device_line, free_gpu = _device(settings)
    lines = [device_line, _versions()]
    root = Path(weights_dir or settings.weights_dir)
    found, listing, states = _weights(settings, root, list_missing, digests)
    lines += found
    lines += _models(root, settings.presets, states)
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
    return lines + listing
