"""``presets``: each preset is a table of the fields it changes over the reference's defaults."""

from __future__ import annotations

import pytest

from stereocrafter.config import StereoConfig


def test_turbo_is_a_table_over_the_defaults() -> None:
    turbo = StereoConfig.from_preset("turbo")
    assert turbo.depth_model == "vda-small" and turbo.depth_input_size == 518  # the published --input_size
    assert (turbo.inpaint_guidance, turbo.inpaint_steps, turbo.inpaint_max_res, turbo.inpaint_multiple) == (
        1.0, 8, 512, 64,
    )  # fmt: skip
    assert turbo.holes_only and (turbo.hole_dilate_px, turbo.hole_feather_px) == (4, 4)
    assert StereoConfig.from_preset("fast").depth_model == StereoConfig().depth_model == "depthcrafter"
    with pytest.raises(
        ValueError, match="unknown depth model 'midas'; choose one of depthcrafter, vda-small"
    ):
        StereoConfig(depth_model="midas")
    with pytest.raises(ValueError, match="depth_input_size must be in"):
        StereoConfig(depth_input_size=600)


def test_presets_are_tables_over_the_reference_defaults() -> None:
    assert StereoConfig.from_preset("reference") == StereoConfig()
    fast = StereoConfig.from_preset("fast", seed=7)
    # DepthCrafter's own inference defaults (run.py): 5 steps, no CFG, window 110 / overlap 25
    assert (fast.depth_steps, fast.depth_guidance, fast.depth_window, fast.depth_overlap) == (5, 1.0, 110, 25)
    # one conditional inpainting pass, the same 8 steps, at most 1024 px, merged into the holes
    assert (fast.inpaint_steps, fast.inpaint_guidance, fast.inpaint_max_res) == (8, 1.0, 1024)
    assert fast.holes_only and fast.seed == 7 and fast.depth_max_res == StereoConfig().depth_max_res


def test_a_preset_is_checked_by_name_with_the_one_message() -> None:
    from stereocrafter.presets import DEFAULT_PRESET, PRESET_NAMES, PRESETS, check_preset

    assert (
        PRESET_NAMES == ("reference", "fast", "turbo", "instant", "clean") and DEFAULT_PRESET == "reference"
    )
    assert dict(PRESETS["reference"]) == {} and check_preset("turbo") == "turbo"
    with pytest.raises(
        ValueError, match="unknown preset 'Turbo'; choose one of reference, fast, turbo, instant, clean"
    ):
        check_preset("Turbo")
