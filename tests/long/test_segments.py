"""``long.segments``: the segment orchestrator against a local backend of known answers: the depth
tasks get only the fields they take, transient failures are retried, a failed segment is named."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stereocrafter.errors import ConversionError
from stereocrafter.long.segments import convert_segments, retryable


def _summary(depth: np.ndarray) -> dict[str, Any]:
    rgb = np.full((18, 32, 3), 100).tolist()
    return {
        "stats": {"min": float(depth.min()), "max": float(depth.max()), "p1": float(depth.min()),
                  "p99": float(depth.max())},
        "thumbnails": {"depth_first": depth.tolist(), "depth_last": depth.tolist(), "colour_first": rgb,
                       "colour_last": rgb},
    }  # fmt: skip


class Backend:
    """Answers like the service: a depth summary per segment (the same scene at two scales), a
    stereo answer echoing its fields; segment 1's first stereo attempt fails with a 503."""

    def __init__(self) -> None:
        self.truth = np.random.default_rng(0).uniform(0.2, 0.8, (36, 64))
        self.depth_fields: list[dict[str, Any]] = []
        self.stereo_fields: list[dict[str, Any]] = []
        self.failures = {1: 1}

    def depth_location(self, index: int, output: str) -> str:
        return f"{output}.depth.mkv"

    def depth(self, source: Any, depth_output: str, **options: Any) -> dict[str, Any]:
        self.depth_fields.append(options)
        return _summary((1.0 + 0.5 * source) * self.truth)

    def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]:
        self.stereo_fields.append(options)
        if self.failures.get(source):
            self.failures[source] -= 1
            raise ConversionError(503, "service_unavailable", "busy")
        return {"output": output, **options}


def test_depth_tasks_get_their_fields_and_a_transient_failure_is_retried() -> None:
    backend = Backend()
    pairs = [(i, f"s3://b/out{i}.mp4") for i in range(3)]
    options = {"preset": "fast", "seed": 5, "max_disp": 30.0}
    result = convert_segments(pairs, backend, mode="sbs", max_concurrency=1, backoff=0.0, **options)
    assert result.failed == [] and [s.attempts["stereo"] for s in result.segments] == [1, 2, 1]
    # no stereo-only field; reuse by default: a rerun does only what is missing
    assert backend.depth_fields == [{"preset": "fast", "seed": 5, "reuse": True}] * 3
    first = backend.stereo_fields[0]
    assert (
        first["mode"] == "sbs"
        and first["max_disp"] == 30.0
        and first["depth_uri"] == "s3://b/out0.mp4.depth.mkv"
    )
    assert {"depth_scale", "depth_shift", "depth_range"} <= set(first) and first["reuse"] is True
    assert "reuse" not in convert_segments(pairs[:1], Backend(), reuse=False).segments[0].result  # type: ignore[operator]


def test_only_service_and_network_failures_are_retried() -> None:
    assert retryable(ConversionError(503, "x", "y")) and not retryable(ConversionError(400, "x", "y"))
    assert not retryable(ConversionError(507, "x", "y"))  # the same segment needs the same memory
    assert retryable(ConnectionError(), (ConnectionError,)) and not retryable(ValueError())


def test_the_run_sums_what_its_jobs_held_and_cost_per_output_minute() -> None:
    class Priced(Backend):
        def depth(self, source: Any, depth_output: str, **options: Any) -> dict[str, Any]:
            return {**super().depth(source, depth_output, **options), "gpu_seconds": 2.0, "cost": 0.002}

        def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]:
            answer = super().stereo(source, output, **options)
            return {**answer, "frames": 48, "fps": "24", "gpu_seconds": 10.0, "cost": 0.01}

    said: list[str] = []
    result = convert_segments(
        [(0, "a.mp4"), (1, "b.mp4"), (2, "c.mp4")], Priced(), log=said.append, backoff=0
    )
    assert result.gpu_seconds == 36.0 and result.cost == pytest.approx(0.036)
    assert result.output_seconds == 6.0  # 3 x 48 frames at 24 fps
    assert said[-1] == ("GPU time 36.0 s for 6.0 s of output: 6.00 GPU-minutes per output minute, "
                        "cost 0.0360 (0.3600 per output minute)")  # fmt: skip
    assert result.as_dict()["cost"] == pytest.approx(0.036)

    class Unpriced(Backend):
        def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]:
            return {**super().stereo(source, output, **options), "frames": 24, "fps": "24"}

    unpriced = convert_segments([(0, "a.mp4")], Unpriced(), backoff=0)
    assert unpriced.cost is None and "no price configured" in unpriced.cost_line()


def test_a_resumed_run_counts_what_its_reused_outputs_took_and_its_failed_attempts() -> None:
    """Segment 0's outputs are reused (their records say 2 s and 10 s when they were made), segment
    1's stereo task fails once after holding the GPU 4 s (the service's error answer says so), then
    converts: the run's own figures count the failure, the film's count every output as made."""
    from stereocrafter.errors import error_from

    class Resumed(Backend):
        def depth(self, source: Any, depth_output: str, **options: Any) -> dict[str, Any]:
            answer = super().depth(source, depth_output, **options)
            if source == 0:
                return {**answer, "reused": True, "gpu_seconds": 0.1, "cost": 0.0001, "made_gpu_seconds": 2.0,
                        "made_cost": 0.002}  # fmt: skip
            return {**answer, "gpu_seconds": 2.0, "cost": 0.002}

        def stereo(self, source: Any, output: str, **options: Any) -> dict[str, Any]:
            if source == 1 and self.failures.get(1):
                self.failures[1] -= 1
                body = {"error": "internal_error", "message": "x", "gpu_seconds": 4.0, "cost": 0.004}
                raise error_from(500, json.dumps(body))
            answer = {**super().stereo(source, output, **options), "frames": 48, "fps": "24"}
            if source == 0:
                made = {"made_gpu_seconds": 10.0, "made_cost": 0.01}
                return {**answer, "reused": True, "gpu_seconds": 0.1, "cost": 0.0001, **made}
            return {**answer, "gpu_seconds": 10.0, "cost": 0.01}

    said: list[str] = []
    result = convert_segments([(0, "a.mp4"), (1, "b.mp4")], Resumed(), log=said.append, backoff=0)
    assert result.failed == [] and result.failed_gpu_seconds == 4.0
    assert result.gpu_seconds == pytest.approx(0.2 + 2.0 + 10.0 + 4.0)  # this run's
    assert result.cost == pytest.approx(0.0002 + 0.002 + 0.01 + 0.004)
    assert result.film_gpu_seconds == pytest.approx(2.0 + 10.0 + 2.0 + 10.0 + 4.0)
    assert result.film_cost == pytest.approx(0.028)
    assert said[-1] == (
        "this run: GPU time 16.2 s (4.0 s of it in failed attempts) for 2.0 s of new output, cost 0.0162; "
        "the film: GPU time 28.0 s (4.0 s of it in failed attempts) for 4.0 s of output: 7.00 GPU-minutes "
        "per output minute, cost 0.0280 (0.4200 per output minute)"
    )
    assert result.as_dict()["film_gpu_seconds"] == pytest.approx(28.0)
