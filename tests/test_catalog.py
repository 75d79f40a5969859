"""``catalog``: the models each preset runs, their repos and licences, and what an endpoint serving
some presets loads."""

from __future__ import annotations

from stereocrafter.catalog import (
    MODELS,
    commercial_ok,
    depth_model_of,
    inpainting_model_of,
    models_of,
    needs_token,
)
from stereocrafter.presets import PEAK_GPU_GB_1080P, PRESET_NAMES


def test_the_catalog_names_each_preset_s_models_and_licences() -> None:
    assert [depth_model_of(p) for p in PRESET_NAMES] == ["depthcrafter", "depthcrafter", *["vda-small"] * 3]
    assert [inpainting_model_of(p) for p in PRESET_NAMES] == [
        "stereocrafter", "stereocrafter", "stereocrafter", "background-fill", "migan",
    ]  # fmt: skip
    assert models_of(["turbo"]) == ("vda-small", "stereocrafter", "svd")
    assert models_of(["fast", "turbo"]) == ("depthcrafter", "vda-small", "stereocrafter", "svd")
    assert MODELS["vda-small"].licence == "Apache-2.0"
    assert set(PEAK_GPU_GB_1080P) == set(PRESET_NAMES)  # what doctor compares the GPU with
    assert "research use only" in MODELS["depthcrafter"].licence
    assert "research use only" in MODELS["stereocrafter"].licence


def test_the_licence_clean_presets_run_no_svd_and_need_no_token() -> None:
    assert models_of(["instant"]) == ("vda-small", "background-fill")
    assert models_of(["clean", "instant"]) == ("vda-small", "migan", "background-fill")
    assert not needs_token(["clean", "instant"])
    assert needs_token(["clean", "turbo"])  # turbo inpaints with StereoCrafter on gated SVD
    assert [p for p in PRESET_NAMES if commercial_ok(p)] == ["instant", "clean"]
    assert MODELS["migan"].licence.startswith("MIT") and MODELS["migan"].code_licence == "MIT"
    assert MODELS["svd"].gated and not any(card.gated for name, card in MODELS.items() if name != "svd")
