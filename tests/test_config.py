"""``config``: the run config, torch-free, its checks, and ``resolve`` (built once at the edge)."""

from __future__ import annotations

import pytest

from stereocrafter.config import StereoConfig


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_disp"):
        StereoConfig(max_disp=-1)
    with pytest.raises(ValueError, match="holes_only"):
        StereoConfig(inpaint_max_res=1024)  # a resized inpaint over the whole frame: refused
    with pytest.raises(ValueError, match="unknown preset 'turbo2'; choose one of reference, fast, turbo"):
        StereoConfig.from_preset("turbo2")


def test_resolve_builds_the_run_config_once_with_the_steps_and_the_served_check() -> None:
    from stereocrafter.config import REFERENCE, resolve
    from stereocrafter.errors import PresetNotServedError
    from stereocrafter.models import depth, inpainting
    from stereocrafter.settings import load_settings

    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_DEPTH_STEPS": "2"})
    config = resolve("fast", settings, seed=7)
    assert (config.preset, config.depth_steps, config.seed, config.depth_window) == ("fast", 2, 7, 110)
    assert resolve(None, settings).preset == settings.preset == "reference"
    with pytest.raises(PresetNotServedError, match="serves the presets fast"):
        resolve("turbo", settings, served=("fast",))
    with pytest.raises(ValueError, match="unknown preset 'quick'"):
        resolve("quick", settings)
    # the models read their defaults from the run config: declared once
    assert (REFERENCE.depth_steps, REFERENCE.depth_guidance) == (depth.DEFAULT_STEPS, depth.DEFAULT_GUIDANCE)
    assert (1.01, REFERENCE.frames_chunk) == (inpainting.DEFAULT_GUIDANCE, inpainting.DEFAULT_FRAMES_CHUNK)


def test_the_run_config_imports_no_torch() -> None:
    import subprocess
    import sys

    script = "import sys; sys.modules['torch'] = None; import stereocrafter.config as c; c.StereoConfig()"
    assert subprocess.run([sys.executable, "-c", script], capture_output=True).returncode == 0
