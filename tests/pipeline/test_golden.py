"""Outputs on the tiny weights are bit-identical to a recording made before the house's third step
(issue 28 moved every module; no published-model computation may change with a move).

``tests/data/golden_outputs.json`` holds the SHA-256 of every preset's raw depth and composed frames in
both modes, on a 30-frame 96x64 clip (two inpainting chunks; one case with several depth windows),
**per CPU**: float results are bit-identical run after run on one machine, not across CPUs whose
kernels differ (the recording made on AMD EPYC differs in every digest on an Intel Xeon with AVX512,
for the same code: issue 36 checked the commit before it there, and its own, and both gave the same
18 digests). A machine is named by its architecture, CPU vendor and the kernels torch picks
(``machine()``); the first recording, made on AMD EPYC before the capability was noted, stands for
any capability on AMD. On a CPU with no recording the test fails and says how to add one: check out
the last commit that passed elsewhere, record there (``python -m tests.pipeline.test_golden``), then
check that the commit under test gives the same digests. Re-record only for a change that is meant
to change outputs, and say so in its commit (issue 29: VDA-S fitted at the frame size, as published,
changed turbo's three digests, and nothing else; instant and clean were added).

Issue 38 changed instant's and clean's composed frames (four digests; their depths and every other
preset's digest unchanged, checked on the Intel recording before re-recording it): a hole at the
frame's border now continues its own row's side (it took another row's pixel), the fill's memory
follows a slow pan in fractions of a pixel and keeps what left the frame for a while, and MI-GAN's
tiles overlap by 32 px with feathered weights (one unweighted mean, hard edges before). Those four
were re-recorded on Intel; the AMD recording could not be remade here (no AMD machine), so its four
are removed and a recording may hold fewer keys than the outputs: the keys it has must match, and
the ones it lacks are named in the test's output (record on AMD to restore them).
"""

from __future__ import annotations

import hashlib
import json
import platform
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


def machine() -> str:
    """This CPU as the recording names it: "<arch> <vendor> <torch's CPU capability>"."""
    vendor = "unknown"
    try:
        with open("/proc/cpuinfo") as info:
            vendor = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("vendor_id")), vendor
            )
    except OSError:
        pass
    return f"{platform.machine()} {vendor} {torch.backends.cpu.get_cpu_capability()}"


def recorded_for(recording: dict[str, dict[str, str]], name: str) -> dict[str, str] | None:
    """This machine's digests: its own entry, else one recorded for any capability of its vendor ("*")."""
    if name in recording:
        return recording[name]
    arch_vendor = name.rsplit(" ", 1)[0]
    return recording.get(f"{arch_vendor} *")


@pytest.mark.slow
def test_outputs_match_the_recording_made_before_the_move(tmp_path: Path) -> None:
    recording = json.loads(RECORDING.read_text())["machines"]
    expected = recorded_for(recording, machine())
    if expected is None:
        pytest.fail(
            f"no recording for this CPU ({machine()}; recorded: {', '.join(recording)}): see the module"
        )
    found = outputs(_pipeline(tmp_path))
    assert expected.keys() <= found.keys(), sorted(expected.keys() - found.keys())
    unrecorded = sorted(found.keys() - expected.keys())
    if unrecorded:
        print(f"not recorded on {machine()} (not compared): {', '.join(unrecorded)}")
    changed = [key for key in expected if found[key] != expected[key]]
    assert not changed, f"outputs changed on {machine()}: {changed}"


if __name__ == "__main__":
    recording = json.loads(RECORDING.read_text())
    with tempfile.TemporaryDirectory() as folder:
        recording["machines"][machine()] = outputs(_pipeline(Path(folder)))
    RECORDING.write_text(json.dumps(recording, indent=1, sort_keys=True) + "\n")
    sys.stdout.write(f"recorded {RECORDING} for {machine()}\n")


def test_the_recording_is_looked_up_by_cpu() -> None:
    recording = {"x86_64 AuthenticAMD *": {"a": "1"}, "x86_64 GenuineIntel AVX512": {"a": "2"}}
    assert recorded_for(recording, "x86_64 AuthenticAMD AVX2") == {"a": "1"}  # any capability on AMD
    assert recorded_for(recording, "x86_64 GenuineIntel AVX512") == {"a": "2"}
    assert recorded_for(recording, "x86_64 GenuineIntel AVX2") is None  # other kernels: not the same floats
    assert machine().startswith(platform.machine())
    assert recorded_for(json.loads(RECORDING.read_text())["machines"], machine()) is not None, machine()
