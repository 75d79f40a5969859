"""Every environment variable the package reads, read once into a frozen ``Settings``.

This is the only module that reads ``os.environ``; everything else gets its configuration from a
``Settings`` (or plain arguments) passed down. AWS clients read their own standard variables
(``AWS_REGION``, ``AWS_ENDPOINT_URL``, credentials) through boto3.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from stereocrafter.bounds import check_encoder
from stereocrafter.catalog import parse_presets
from stereocrafter.presets import DEFAULT_PRESET, check_preset

DEFAULT_WEIGHTS_DIR = "/opt/ml/model/weights"  # the container's model volume on SageMaker


class Env:
    """The name of every environment variable the service reads, declared once: ``load_settings``
    reads them, the deploy (``containerize``) sets them on the endpoint and the EC2 host."""

    HF_TOKEN_ARN = "HF_TOKEN_ARN"
    HF_HUB_OFFLINE = "HF_HUB_OFFLINE"  # huggingface_hub's own: set, the service never downloads
    INSTANCE_HOUR_PRICE = "STEREOCRAFTER_INSTANCE_HOUR_PRICE"
    COMPILE = "STEREOCRAFTER_COMPILE"
    DEPTH_INPUT_SIZE = "STEREOCRAFTER_DEPTH_INPUT_SIZE"
    DEPTH_STEPS = "STEREOCRAFTER_DEPTH_STEPS"
    DEVICE = "STEREOCRAFTER_DEVICE"
    ENCODER = "STEREOCRAFTER_ENCODER"
    FAULTS_FILE = "STEREOCRAFTER_FAULTS_FILE"
    INPAINT_STEPS = "STEREOCRAFTER_INPAINT_STEPS"
    JOB_TIMEOUT_S = "STEREOCRAFTER_JOB_TIMEOUT_S"
    MAX_BODY_BYTES = "STEREOCRAFTER_MAX_BODY_BYTES"
    MAX_FRAMES = "STEREOCRAFTER_MAX_FRAMES"
    MAX_INPUT_BYTES = "STEREOCRAFTER_MAX_INPUT_BYTES"
    MAX_PIXELS = "STEREOCRAFTER_MAX_PIXELS"
    PRESET = "STEREOCRAFTER_PRESET"
    PRESETS = "STEREOCRAFTER_PRESETS"
    S3_CONNECT_TIMEOUT = "STEREOCRAFTER_S3_CONNECT_TIMEOUT"
    S3_MAX_ATTEMPTS = "STEREOCRAFTER_S3_MAX_ATTEMPTS"
    S3_READ_TIMEOUT = "STEREOCRAFTER_S3_READ_TIMEOUT"
    SLOTS = "STEREOCRAFTER_SLOTS"
    WORK_DIR = "STEREOCRAFTER_WORK_DIR"
    WEIGHTS_MANIFEST = "STEREOCRAFTER_WEIGHTS_MANIFEST"
    WEIGHTS_DIR = "WEIGHTS_DIR"


@dataclass(frozen=True)
class Settings:
    weights_dir: Path  # WEIGHTS_DIR
    device: str  # STEREOCRAFTER_DEVICE: cpu | cuda (default: cuda if available)
    hf_token_arn: str | None  # HF_TOKEN_ARN: Secrets Manager secret holding the Hugging Face token
    work_dir: Path | None  # STEREOCRAFTER_WORK_DIR: per-request temp files (default: system temp)
    max_input_bytes: int  # STEREOCRAFTER_MAX_INPUT_BYTES (default 4 GiB)
    max_frames: int  # STEREOCRAFTER_MAX_FRAMES (default 1800)
    max_pixels: int  # STEREOCRAFTER_MAX_PIXELS per frame (default 1920*1080)
    preset: str  # STEREOCRAFTER_PRESET: the default preset (default "reference", else the first served)
    presets: tuple[str, ...]  # STEREOCRAFTER_PRESETS: the presets served, comma-separated (default: all)
    depth_steps: int | None  # STEREOCRAFTER_DEPTH_STEPS: overrides the preset's (tests, demos)
    inpaint_steps: int | None  # STEREOCRAFTER_INPAINT_STEPS: overrides the preset's
    depth_input_size: (
        int | None
    )  # STEREOCRAFTER_DEPTH_INPUT_SIZE: VDA's input size (default 518; tests, demos)
    compile_backend: str | None  # STEREOCRAFTER_COMPILE: 1 = torch.compile the UNets (inductor), or a backend
    max_body_bytes: int  # STEREOCRAFTER_MAX_BODY_BYTES: /invocations body (default 64 KiB)
    s3_connect_timeout: float  # STEREOCRAFTER_S3_CONNECT_TIMEOUT seconds (default 3)
    s3_read_timeout: float  # STEREOCRAFTER_S3_READ_TIMEOUT seconds per socket read (default 15)
    s3_max_attempts: int  # STEREOCRAFTER_S3_MAX_ATTEMPTS per S3 call, the first included (default 3)
    job_timeout_s: float  # STEREOCRAFTER_JOB_TIMEOUT_S: a job's deadline from its arrival (default 3500)
    faults_file: Path | None  # STEREOCRAFTER_FAULTS_FILE: fault injection for tests and drills (faults.py)
    slots: int | None  # STEREOCRAFTER_SLOTS: jobs at once, one pipeline per GPU (default: every visible GPU)
    encoder: str  # STEREOCRAFTER_ENCODER: auto | libx264 | h264_nvenc | hevc_nvenc (default auto)
    # STEREOCRAFTER_INSTANCE_HOUR_PRICE: what the instance costs per hour (e.g. USD, the operator's
    # own price); a job's cost is its share: the hours it held its slot x the price / the slots
    instance_hour_price: float | None = None
    # STEREOCRAFTER_WEIGHTS_MANIFEST: a manifest file (manifest.to_json) replacing the published one
    # (other pinned revisions; tests); None: manifest.PUBLISHED
    weights_manifest: Path | None = None
    hub_offline: bool = False  # HF_HUB_OFFLINE: nothing is downloaded; WEIGHTS_DIR is verified as it is


def _int(env: Mapping[str, str], name: str, default: int, low: int = 1) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    """The variable as an integer >= 1, or None when it is unset or empty."""
    if not env.get(name, "").strip():
        return None
    return _int(env, name, 1)


def _compile_backend(raw: str) -> str | None:
    value = raw.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return None
    return "inductor" if value in ("1", "true", "yes", "on") else value


def _seconds(env: Mapping[str, str], name: str, default: float, high: float = 3600) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= high:
        raise ValueError(f"{name} must be in (0, {high:g}] seconds, got {value}")
    return value


def load_settings(
    environ: Mapping[str, str] | None = None, *, default_device: Callable[[], str] | None = None
) -> Settings:
    """Read the environment once (see ``Settings`` for the variables and defaults).

    Without ``STEREOCRAFTER_DEVICE``, the device is ``default_device()`` (``serving.gpu.default_device``:
    cuda when torch sees a GPU). The caller passes it because this module imports no torch; a caller
    that passes none must set the variable."""
    env = os.environ if environ is None else environ
    device = env.get(Env.DEVICE, "").strip().lower()
    if not device:
        if default_device is None:
            raise ValueError("STEREOCRAFTER_DEVICE is not set and no default device was given")
        device = default_device()
    if device not in ("cpu", "cuda"):
        raise ValueError(f"STEREOCRAFTER_DEVICE must be cpu or cuda, got {device!r}")
    work_dir = env.get(Env.WORK_DIR, "").strip()
    presets = parse_presets(env.get(Env.PRESETS, ""))
    preset = env.get(Env.PRESET, "").strip()
    if not preset:
        preset = DEFAULT_PRESET if DEFAULT_PRESET in presets else presets[0]
    elif check_preset(preset) not in presets:
        raise ValueError(
            f"STEREOCRAFTER_PRESET is {preset}, which STEREOCRAFTER_PRESETS does not serve "
            f"({', '.join(presets)})"
        )
    return Settings(
        weights_dir=Path(env.get(Env.WEIGHTS_DIR) or DEFAULT_WEIGHTS_DIR),
        device=device,
        hf_token_arn=env.get(Env.HF_TOKEN_ARN, "").strip() or None,
        work_dir=Path(work_dir) if work_dir else None,
        max_input_bytes=_int(env, Env.MAX_INPUT_BYTES, 4 * 2**30),
        max_frames=_int(env, Env.MAX_FRAMES, 1800),
        max_pixels=_int(env, Env.MAX_PIXELS, 1920 * 1080),
        preset=preset,
        presets=presets,
        depth_steps=_optional_int(env, Env.DEPTH_STEPS),
        inpaint_steps=_optional_int(env, Env.INPAINT_STEPS),
        depth_input_size=_optional_int(env, Env.DEPTH_INPUT_SIZE),
        compile_backend=_compile_backend(env.get(Env.COMPILE, "")),
        max_body_bytes=_int(env, Env.MAX_BODY_BYTES, 64 * 1024, low=256),
        s3_connect_timeout=_seconds(env, Env.S3_CONNECT_TIMEOUT, 3.0),
        s3_read_timeout=_seconds(env, Env.S3_READ_TIMEOUT, 15.0),
        s3_max_attempts=_int(env, Env.S3_MAX_ATTEMPTS, 3),
        # Just under SageMaker's 3600 s for an asynchronous request: the job stops itself first.
        job_timeout_s=_seconds(env, Env.JOB_TIMEOUT_S, 3500.0, high=86400),
        faults_file=Path(env[Env.FAULTS_FILE]) if env.get(Env.FAULTS_FILE) else None,
        slots=_optional_int(env, Env.SLOTS),
        encoder=check_encoder(env.get(Env.ENCODER, "").strip() or "auto", Env.ENCODER),
        instance_hour_price=_price(env),
        weights_manifest=Path(env[Env.WEIGHTS_MANIFEST])
        if env.get(Env.WEIGHTS_MANIFEST, "").strip()
        else None,
        hub_offline=env.get(Env.HF_HUB_OFFLINE, "").strip().lower() in ("1", "true", "yes", "on"),
    )


def _price(env: Mapping[str, str]) -> float | None:
    raw = env.get(Env.INSTANCE_HOUR_PRICE, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{Env.INSTANCE_HOUR_PRICE} must be a price per hour, got {raw!r}") from None
    if not 0 <= value < 10_000:
        raise ValueError(f"{Env.INSTANCE_HOUR_PRICE} must be in [0, 10000), got {value}")
    return value
