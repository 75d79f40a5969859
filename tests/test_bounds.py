"""``bounds``: the rules the schema, the CLI and the run config share, declared once."""

from __future__ import annotations

import pytest

from stereocrafter.bounds import (
    DEFAULT_MODE,
    MODES,
    VDA_INPUT_SIZE,
    VDA_PATCH,
    check_depth_range,
    check_encoder,
    check_max_disp,
    check_mode,
    check_seed,
    check_tile_num,
    wide_enough,
)


def test_the_default_mode_is_a_mode_and_the_checks_name_the_bad_value() -> None:
    assert DEFAULT_MODE == "anaglyph" and DEFAULT_MODE in MODES
    assert check_mode("sbs") == "sbs"
    with pytest.raises(ValueError, match=r"unknown stereo mode 'SBS'; expected one of anaglyph, sbs"):
        check_mode("SBS")
    with pytest.raises(ValueError, match="--max-disp"):
        check_max_disp(101.0, "--max-disp")
    assert check_seed(2**31 - 1) == 2**31 - 1
    with pytest.raises(ValueError, match="seed"):
        check_seed(2**31)
    with pytest.raises(ValueError, match="tile_num"):
        check_tile_num(3)
    with pytest.raises(ValueError, match="encoder must be one of"):
        check_encoder("x265")


def test_a_depth_range_must_be_wide_enough_for_float32() -> None:
    assert wide_enough(0.0, 1.0) and not wide_enough(1000.0, 1000.0 + 1e-4)
    check_depth_range(-1.0, 2.0)
    with pytest.raises(ValueError, match="too narrow"):
        check_depth_range(5.0, 5.0 + 1e-7)
    assert (VDA_PATCH, VDA_INPUT_SIZE) == (14, 518)
