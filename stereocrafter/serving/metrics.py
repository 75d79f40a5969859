"""The service's own Prometheus metrics, served with BentoML's on ``GET /metrics``.

BentoML runs its workers with prometheus_client's multiprocess mode and exports every metric
written there, so these are plain prometheus_client objects (``bentoml.metrics`` is deprecated in
favour of them). Names and meaning:

- ``stereocrafter_jobs_total{outcome, code}``: every ``/invocations`` answer; outcome ``ok`` or
  ``error``, code the error body's ``error`` ("" when ok).
- ``stereocrafter_frames_total``: frames converted.
- ``stereocrafter_stage_seconds_per_frame{stage}``: histogram per job of each stage's seconds over
  its frames (depth, splat, inpainting, compose_encode, ...).
- ``stereocrafter_queue_wait_seconds``: histogram of the wait for the GPU slot.
- ``stereocrafter_peak_gpu_memory_bytes``: histogram of each job's peak allocated GPU memory
  (observed only on a GPU).
- ``stereocrafter_model_state{state}``: 1 for the models' current state (loading, ready,
  failed, no_weights), 0 for the others.
- ``stereocrafter_preset_state{preset, state}``: 1 for each served preset's state (ready, loading,
  missing, corrupt, failed), 0 for the others: one model missing takes down only its presets.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MODEL_STATES = ("loading", "ready", "failed", "no_weights")
PRESET_STATES = ("ready", "loading", "missing", "corrupt", "failed")

JOBS = Counter("stereocrafter_jobs", "Answers of /invocations by outcome and error code", ["outcome", "code"])
FRAMES = Counter("stereocrafter_frames", "Frames converted, by preset", ["preset"])
GPU_SECONDS = Counter("stereocrafter_gpu_seconds", "Seconds jobs held a slot (a GPU), by preset", ["preset"])
COST = Counter(
    "stereocrafter_cost", "Jobs' share of STEREOCRAFTER_INSTANCE_HOUR_PRICE, by preset", ["preset"]
)
STAGE_SECONDS_PER_FRAME = Histogram(
    "stereocrafter_stage_seconds_per_frame",
    "Seconds per frame of each stage, one observation per job and stage, by preset",
    ["stage", "preset"],
    buckets=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0),
)
QUEUE_WAIT = Histogram(
    "stereocrafter_queue_wait_seconds",
    "Seconds a request waited for the GPU slot",
    buckets=(0.01, 0.1, 1.0, 10.0, 60.0, 300.0, 900.0, 3600.0),
)
PEAK_GPU_MEMORY = Histogram(
    "stereocrafter_peak_gpu_memory_bytes",
    "Peak allocated GPU memory of each job",
    buckets=tuple(gb * 2**30 for gb in (4, 8, 16, 24, 32, 48, 64, 80, 141)),
)
MODEL_STATE = Gauge(
    "stereocrafter_model_state",
    "1 for the current state of the models",
    ["state"],
    multiprocess_mode="livemax",
)


PRESET_STATE = Gauge(
    "stereocrafter_preset_state",
    "1 for the current state of each served preset",
    ["preset", "state"],
    multiprocess_mode="livemax",
)


def set_model_state(state: str, presets: dict[str, dict[str, str]] | None = None) -> None:
    """The models' state, and each served preset's (``ModelHolder.preset_states``) when given."""
    for name in MODEL_STATES:
        MODEL_STATE.labels(name).set(1 if name == state else 0)
    for preset, about in (presets or {}).items():
        for name in PRESET_STATES:
            PRESET_STATE.labels(preset, name).set(1 if name == about["state"] else 0)


def job_finished(
    frames: int, timings: dict[str, float], preset: str, gpu_seconds: float = 0.0, cost: float | None = None
) -> None:
    """A finished job's frames, its slot's seconds and cost, and each stage's seconds per frame,
    under its preset (the presets' costs differ by three orders of magnitude: one histogram for all
    would say nothing)."""
    FRAMES.labels(preset).inc(frames)
    GPU_SECONDS.labels(preset).inc(gpu_seconds)
    if cost is not None:
        COST.labels(preset).inc(cost)
    for stage, seconds in timings.items():
        if stage not in ("total", "download", "upload", "preflight", "probe") and frames:
            STAGE_SECONDS_PER_FRAME.labels(stage, preset).observe(seconds / frames)
