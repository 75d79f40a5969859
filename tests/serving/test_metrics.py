"""``serving.metrics``: what a finished job adds to the Prometheus series BentoML serves."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from stereocrafter.serving import metrics


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_finished_job_counts_its_frames_and_each_stage_s_seconds_per_frame() -> None:
    frames, per_frame = (
        _value("stereocrafter_frames_total", preset="instant"),
        "stereocrafter_stage_seconds_per_frame_count",
    )
    depth = _value(per_frame, stage="depth", preset="instant")
    other = _value(per_frame, stage="depth", preset="reference")
    metrics.job_finished(10, {"depth": 2.0, "inpainting": 3.0}, "instant")
    assert _value("stereocrafter_frames_total", preset="instant") == frames + 10
    assert _value(per_frame, stage="depth", preset="instant") == depth + 1
    assert _value(per_frame, stage="depth", preset="reference") == other  # each preset its own series


def test_a_finished_job_adds_its_slot_seconds_and_cost() -> None:
    held, cost = (
        _value("stereocrafter_gpu_seconds_total", preset="clean"),
        _value("stereocrafter_cost_total", preset="clean"),
    )
    metrics.job_finished(4, {}, "clean", gpu_seconds=2.5, cost=0.01)
    metrics.job_finished(4, {}, "clean", gpu_seconds=1.0)  # no price configured: no cost
    assert _value("stereocrafter_gpu_seconds_total", preset="clean") == held + 3.5
    assert _value("stereocrafter_cost_total", preset="clean") == pytest.approx(cost + 0.01)


def test_the_model_state_is_one_hot() -> None:
    metrics.set_model_state("ready")
    states = {s: _value("stereocrafter_model_state", state=s) for s in metrics.MODEL_STATES}
    assert states["ready"] == 1 and sum(states.values()) == 1


def test_each_served_presets_state_is_one_hot() -> None:
    metrics.set_model_state(
        "ready", {"turbo": {"state": "ready"}, "clean": {"state": "missing", "model": "migan"}}
    )
    clean = {s: _value("stereocrafter_preset_state", preset="clean", state=s) for s in metrics.PRESET_STATES}
    assert clean["missing"] == 1 and sum(clean.values()) == 1
    assert _value("stereocrafter_preset_state", preset="turbo", state="ready") == 1
    metrics.set_model_state("ready", {"clean": {"state": "ready"}})  # the file arrived: up again
    assert _value("stereocrafter_preset_state", preset="clean", state="missing") == 0
