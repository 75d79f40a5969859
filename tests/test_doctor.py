"""``doctor``: what this machine can run, from ``stereocrafter doctor`` and the service's start-up log:
every model with its licence, whether it is loaded, the weights, the memory of the served set."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.cli import main as cli_main
from stereocrafter.settings import load_settings


def test_doctor_lists_every_model_with_its_licence_and_whether_it_is_loaded(tiny_weights: Path) -> None:
    from stereocrafter.doctor import diagnose

    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "turbo"})
    lines = diagnose(settings, tiny_weights)
    models = {line.split()[1]: line for line in lines if line.startswith("  model ")}
    assert "presets served: turbo (STEREOCRAFTER_PRESETS)" in lines
    assert set(models) == {"depthcrafter", "vda-small", "stereocrafter", "svd", "migan", "background-fill"}
    assert models["vda-small"].endswith("Apache-2.0: loaded for turbo; weights present")
    assert "research use only (DepthCrafter LICENSE): not loaded" in models["depthcrafter"]
    assert "research use only" in models["stereocrafter"] and "loaded for turbo" in models["stereocrafter"]
    assert "non-commercial" in models["svd"] and "loaded for turbo" in models["svd"]
    assert "tencent/DepthCrafter" not in next(line for line in lines if line.startswith("download"))


def test_doctor(tiny_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["doctor", "--weights-dir", str(tiny_weights), "--preset", "fast"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("device: ") and "torch " in out[1] and "PyAV" in out[1]
    assert "complete" in out[2] and "digests checked" in out[2] and "TINY RANDOM" in out[2]
    assert out[3] == "presets this machine can run: reference, fast, turbo, instant, clean"
    out = out[:3] + out[4:]  # the lines below as they were before the presets' line
    assert out[3] == "presets served: reference, fast, turbo, instant, clean (STEREOCRAFTER_PRESETS)"
    assert [line.split()[1] for line in out[4:10]] == [
        "depthcrafter", "vda-small", "stereocrafter", "migan", "background-fill", "svd",
    ]  # fmt: skip
    manifest = out[out.index("manifest: the tiny weights' own record (weights.lock.json)") :]
    assert len(manifest) == 18 and all(line.endswith(": ok") for line in manifest[1:])
    assert "  andraniksargsyan/migan/migan_pipeline_v2.onnx @ " in "\n".join(manifest)
    out = out[:4] + out[6:]  # the lines below as they were with three presets
    # every served preset's models stay resident (7.75 GB), the largest call is reference's
    assert (
        "served presets (reference, fast, turbo, instant, clean) keep 7.8 GB of weights resident "
        "and need about 23.3 GB" in out[8]
    )
    assert "(preset fast alone: 17.4 GB;" in out[8]
    # no driver here: NVENC does not open, and auto (the default) falls back to libx264
    assert out[9].startswith("NVENC: not usable (")
    assert out[10].startswith("encoder: STEREOCRAFTER_ENCODER=auto -> libx264 (preset veryfast, CRF 18; ")
    assert "download at start-up: no" in out[11]
    assert cli_main(["doctor", "--weights-dir", str(tmp_path)]) == 0
    out = "\n".join(capsys.readouterr().out.splitlines())
    assert "12 of 12 files missing, 0 differing" in out and "missing: tencent/DepthCrafter/config.json" in out
    assert "missing: depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth" in out
    assert "presets this machine can run: none; not: reference (depthcrafter missing" in out
    assert "manifest: the published one" in out
    assert (
        "  depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth @ "
        "256875362cff76724b920335dfb4b29dd611f66e: 116,440,756 B, sha256 "
        "13379300b739e659f076a59d52e9801bd8d38c541a7e71f73bbca4dcfb013609: missing" in out
    )
    assert (
        "TencentARC/StereoCrafter/unet_diffusers/config.json @ not pinned (locked at the first download)"
        in out
    )


def test_doctor_names_a_file_that_differs_and_the_presets_it_takes_down(
    weights_copy: Path, capsys: pytest.CaptureFixture
) -> None:
    onnx_file = weights_copy / "andraniksargsyan/migan/migan_pipeline_v2.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:-1] + b"!")
    assert cli_main(["doctor", "--weights-dir", str(weights_copy)]) == 0
    out = capsys.readouterr().out
    assert "0 of 17 files missing, 1 differing from the manifest" in out
    assert (
        "  DIFFERS: andraniksargsyan/migan/migan_pipeline_v2.onnx is not the published file: sha256 " in out
    )
    assert "presets this machine can run: reference, fast, turbo, instant; not: clean (migan corrupt)" in out
    assert "loaded for clean; WEIGHTS DIFFER FROM THE MANIFEST" in out


def test_doctor_says_a_clean_endpoint_needs_no_token(tiny_weights: Path) -> None:
    from stereocrafter.doctor import diagnose

    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "clean,instant"})
    lines = diagnose(settings, tiny_weights)
    download = next(line for line in lines if line.startswith("download"))
    assert "without a token" in download and "every repo of the presets served is public" in download
    assert "stabilityai" not in download and "andraniksargsyan/migan" in download
    models = {line.split()[1]: line for line in lines if line.startswith("  model ")}
    assert models["background-fill"].endswith("loaded for instant; no weights to load")
    assert "MIT" in models["migan"] and "loaded for clean; weights present" in models["migan"]
    assert "not loaded" in models["svd"] and "not loaded" in models["stereocrafter"]
    only_fill = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_PRESETS": "instant"})
    assert "without a token" in next(x for x in diagnose(only_fill, tiny_weights) if x.startswith("download"))
