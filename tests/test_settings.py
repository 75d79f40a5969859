"""Every environment variable, read once: defaults, parsing and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.catalog import parse_presets
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.settings import load_settings


def test_defaults() -> None:
    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu"})
    assert settings.weights_dir == Path("/opt/ml/model/weights") and settings.preset == "reference"
    assert settings.depth_steps is None and settings.inpaint_steps is None  # the preset's own
    assert settings.compile_backend is None and settings.max_body_bytes == 65536
    assert (settings.s3_connect_timeout, settings.s3_read_timeout, settings.s3_max_attempts) == (3.0, 15.0, 3)


def test_values() -> None:
    settings = load_settings(
        {
            "STEREOCRAFTER_DEVICE": "cpu",
            "STEREOCRAFTER_PRESET": "fast",
            "STEREOCRAFTER_DEPTH_STEPS": "2",
            "STEREOCRAFTER_COMPILE": "1",
            "STEREOCRAFTER_S3_READ_TIMEOUT": "2.5",
        }
    )
    assert (settings.preset, settings.depth_steps, settings.inpaint_steps) == ("fast", 2, None)
    assert settings.compile_backend == "inductor" and settings.s3_read_timeout == 2.5
    assert (
        load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_COMPILE": "eager"}).compile_backend
        == "eager"
    )
    assert (
        load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_COMPILE": "0"}).compile_backend is None
    )
    priced = {"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_INSTANCE_HOUR_PRICE": "1.212"}
    assert load_settings(priced).instance_hour_price == 1.212
    assert load_settings({"STEREOCRAFTER_DEVICE": "cpu"}).instance_hour_price is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STEREOCRAFTER_PRESET", "turbo2", "unknown preset 'turbo2'"),
        ("STEREOCRAFTER_DEPTH_STEPS", "0", "must be >= 1"),
        ("STEREOCRAFTER_S3_READ_TIMEOUT", "soon", "number of seconds"),
        ("STEREOCRAFTER_S3_READ_TIMEOUT", "0", "(0, 3600]"),
        ("STEREOCRAFTER_MAX_BODY_BYTES", "10", "must be >= 256"),
        ("STEREOCRAFTER_DEVICE", "tpu", "cpu or cuda"),
        ("STEREOCRAFTER_INSTANCE_HOUR_PRICE", "cheap", "price per hour"),
        ("STEREOCRAFTER_INSTANCE_HOUR_PRICE", "-1", "[0, 10000)"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str, message: str) -> None:
    with pytest.raises(ValueError, match=name if name != "STEREOCRAFTER_PRESET" else "preset") as caught:
        load_settings({"STEREOCRAFTER_DEVICE": "cpu", name: value})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("env", "presets", "default"),
    [
        ({}, PRESET_NAMES, "reference"),
        ({"STEREOCRAFTER_PRESETS": "turbo"}, ("turbo",), "turbo"),
        ({"STEREOCRAFTER_PRESETS": " fast, turbo ,fast"}, ("fast", "turbo"), "fast"),
        ({"STEREOCRAFTER_PRESETS": "turbo,reference"}, ("turbo", "reference"), "reference"),
        (
            {"STEREOCRAFTER_PRESETS": "fast,turbo", "STEREOCRAFTER_PRESET": "turbo"},
            ("fast", "turbo"),
            "turbo",
        ),
    ],
)
def test_the_presets_served(env: dict[str, str], presets: tuple[str, ...], default: str) -> None:
    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", **env})
    assert (settings.presets, settings.preset) == (presets, default)


def test_a_default_preset_that_is_not_served_or_an_unknown_one_is_refused() -> None:
    env = {"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "turbo", "STEREOCRAFTER_PRESET": "fast"}
    with pytest.raises(ValueError, match="PRESET is fast, which STEREOCRAFTER_PRESETS does not serve"):
        load_settings(env)
    with pytest.raises(ValueError, match="unknown preset 'quick'"):
        parse_presets("turbo,quick")
    assert parse_presets(" , ") == PRESET_NAMES
