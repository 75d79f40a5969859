"""``catalog``: the models each preset runs, their repos and licences, and what an endpoint serving
some presets loads."""

from __future__ import annotations

from stereocrafter.catalog import MODELS, depth_model_of, models_of
from stereocrafter.presets import PEAK_GPU_GB_1080P, PRESET_NAMES


def test_the_catalog_names_each_preset_s_models_and_licences() -> None:
    assert [depth_model_of(p) for p in PRESET_NAMES] == ["depthcrafter", "depthcrafter", "vda-small"]
    assert models_of(["turbo"]) == ("vda-small", "stereocrafter", "svd")
    assert models_of(["fast", "turbo"]) == ("depthcrafter", "vda-small", "stereocrafter", "svd")
    assert MODELS["vda-small"].licence == "Apache-2.0"
    assert set(PEAK_GPU_GB_1080P) == set(PRESET_NAMES)  # what doctor compares the GPU with
    assert "research use only" in MODELS["depthcrafter"].licence
    assert "research use only" in MODELS["stereocrafter"].licence
