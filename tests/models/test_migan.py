"""MI-GAN's generator against a literal walk through the published inference on the same random
weights, and its strict loading of the published layout."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.models import migan
from stereocrafter.models.migan import MiganArchitecture, MiganGenerator, architecture_of, load_migan
from stereocrafter.testing.weights import TINY_MIGAN, random_migan
from tests.support.migan_reference import reference_demo_input, reference_generator

# 512 px like the published file, with narrow layers so that a CPU runs it in a second.
NARROW_512 = MiganArchitecture(resolution=512, ch_base=1024, ch_max=16)


def _case(arch: MiganArchitecture, seed: int = 3) -> tuple[MiganGenerator, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size = arch.resolution
    rgb = torch.rand(2, 3, size, size, generator=g)
    known = (torch.rand(2, 1, size // 16, size // 16, generator=g) > 0.3).float()
    known = torch.nn.functional.interpolate(known, size=(size, size), mode="nearest")
    return random_migan(arch, seed), rgb, known


def test_generator_matches_the_published_inference_at_512():
    model, rgb, known = _case(NARROW_512)
    x = migan.model_input(rgb, known)
    assert torch.equal(x, reference_demo_input(rgb, known))
    with torch.no_grad():
        ours = model(x)
    theirs = reference_generator({k: v.clone() for k, v in model.state_dict().items()}, x.clone())
    assert ours.shape == (2, 3, 512, 512)
    assert float(ours.abs().max()) > 1.0  # random weights: a large, non-trivial output
    scale = float(theirs.abs().max())
    assert float((ours - theirs).abs().max()) <= 1e-5 * max(1.0, scale)


@pytest.mark.slow  # the published widths: two 30 GFLOP calls, about 15 s on 2 cores
def test_the_published_size_matches_the_published_inference():
    model, rgb, known = _case(migan.PUBLISHED, seed=5)
    x = migan.model_input(rgb[:1], known[:1])
    with torch.no_grad():
        ours = model(x)
    theirs = reference_generator({k: v.clone() for k, v in model.state_dict().items()}, x.clone())
    scale = float(theirs.abs().max())
    assert scale > 1.0 and float((ours - theirs).abs().max()) <= 1e-5 * scale


def test_published_architecture_counts():
    model = MiganGenerator(migan.PUBLISHED)
    params = sum(p.numel() for p in model.parameters())
    buffers = sum(b.numel() for b in model.buffers())
    assert params == 5_973_366  # the published Generator(resolution=512), counted on it
    assert buffers == 1_398_016
    assert architecture_of(model.state_dict()) == migan.PUBLISHED


def test_noise_and_fixed_buffers_are_in_the_state_dict():
    keys = set(MiganGenerator(TINY_MIGAN).state_dict())
    assert "synthesis.b64.conv1.noise_const" in keys and "synthesis.b64.conv1.noise_strength" in keys
    assert (
        "synthesis.b64.upsample.filter_const" in keys and "encoder.b64.conv2.downsample.filter.weight" in keys
    )
    assert "encoder.b64.fromrgb.weight" in keys and "encoder.b32.fromrgb.weight" not in keys
    assert "synthesis.b4.conv2.noise_const" not in keys  # the first synthesis block has none


def test_load_is_strict_and_names_the_key(tmp_path):
    model = random_migan(TINY_MIGAN)
    good = tmp_path / "good.pt"
    torch.save(model.state_dict(), good)
    loaded = load_migan(good)
    assert loaded.arch == TINY_MIGAN
    x = migan.model_input(torch.rand(1, 3, 64, 64), torch.ones(1, 1, 64, 64))
    assert torch.equal(loaded(x), model.eval()(x))

    state = model.state_dict()
    missing = dict(state)
    del missing["synthesis.b32.conv2.noise_strength"]
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing keys \['synthesis.b32.conv2.noise_strength'\]"):
        load_migan(tmp_path / "missing.pt")

    extra = {**state, "encoder.b64.extra.weight": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"unknown keys \['encoder.b64.extra.weight'\]"):
        load_migan(tmp_path / "extra.pt")

    wrong = {**state, "synthesis.b8.torgb.bias": torch.zeros(4)}
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(ValueError, match=r"synthesis\.b8\.torgb\.bias is"):
        load_migan(tmp_path / "wrong.pt")

    (tmp_path / "corrupt.pt").write_bytes(good.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable MI-GAN state dict"):
        load_migan(tmp_path / "corrupt.pt")


def test_code_in_the_file_does_not_run(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    torch.save({"x": Payload()}, tmp_path / "evil.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(ValueError, match="not a readable"):
        load_migan(tmp_path / "evil.pt")


def test_composite_keeps_known_pixels_exactly():
    rgb = torch.rand(1, 3, 8, 8)
    known = (torch.rand(1, 1, 8, 8) > 0.5).float()
    generated = torch.rand(1, 3, 8, 8) * 4 - 2
    out = migan.composite(rgb, known, generated)
    assert torch.equal(out * known, rgb * known)
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    hole = known == 0
    expected = (generated * 0.5 + 0.5).clamp(0, 1)
    assert torch.equal(out.expand_as(rgb)[hole.expand_as(rgb)], expected[hole.expand_as(rgb)])
