"""Outputs on the tiny weights are bit-identical to a recording made before the house's third step
(issue 28 moved every module; no published-model computation may change with a move).

``tests/data/golden_outputs.json`` holds the SHA-256 of every preset's raw depth and composed frames in
both modes, on a 30-frame 96x64 clip (two inpainting chunks; one case with several depth windows).
Re-record only for a change that is meant to change outputs, and say so in its commit (issue 29:
VDA-S fitted at the frame size, as published, changed turbo's three digests, and nothing else;
instant and clean were added):
``python -m tests.pipeline.test_golden``.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.testing.media import scene_frames
from stereocrafter.testing.weights import make_tiny_weights

RECORDING = Path(__file__).parent / "data" / "golden_outputs.json"
NUM_FRAMES, WIDTH, HEIGHT = 30, 96, 64
# Each case: a preset and the overrides that keep it quick on the tiny weights.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "reference": ("reference", {}),
    "reference-windows": ("reference", {"depth_window": 16, "depth_overlap": 4}),
    "fast": ("fast", {}),
    "turbo": ("turbo", {"depth_input_size": 28}),
    "instant": ("instant", {"depth_input_size": 28}),  # recorded when issue 29 added them
    "clean": ("clean", {"depth_input_size": 28}),
}
MODES = ("anaglyph", "sbs")


def _digest(array: np.ndarray | torch.Tensor) -> str:
    data = array.numpy() if isinstance(array, torch.Tensor) else array
    return hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()


def outputs(pipeline: StereoPipeline) -> dict[str, str]:
    """{case/depth: digest, case/mode: digest} for every case and mode."""
    frames = scene_frames(NUM_FRAMES, WIDTH, HEIGHT)

    def open_frames():
        return iter([frames[:12], frames[12:]])

    found: dict[str, str] = {}
    for case, (preset, overrides) in CASES.items():
        config = StereoConfig.from_preset(preset, **overrides)
        depth = pipeline.depth_pass(
            open_frames, num_frames=NUM_FRAMES, width=WIDTH, height=HEIGHT, config=config
        )
        found[f"{case}/depth"] = _digest(depth)
        for mode in MODES:
            composed: list[np.ndarray] = []
            pipeline.run(open_frames, composed.append, num_frames=NUM_FRAMES, width=WIDTH, height=HEIGHT,
                         mode=mode, config=config)  # fmt: skip
            found[f"{case}/{mode}"] = _digest(np.concatenate(composed))
    return found


def _pipeline(root: Path) -> StereoPipeline:
    return load_stereo_pipeline(make_tiny_weights(root), device="cpu")


@pytest.mark.slow
def test_outputs_match_the_recording_made_before_the_move(tmp_path: Path) -> None:
    expected = json.loads(RECORDING.read_text())
    found = outputs(_pipeline(tmp_path))
    assert found.keys() == expected.keys()
    changed = [key for key in expected if found[key] != expected[key]]
    assert not changed, f"outputs changed: {changed}"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        RECORDING.write_text(json.dumps(outputs(_pipeline(Path(folder))), indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"recorded {RECORDING}\n")
