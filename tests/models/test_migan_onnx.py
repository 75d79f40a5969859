"""MI-GAN's state dict recovered from an ONNX pipeline exported the way the authors exported theirs
(``testing.migan_export``: the generator as ``model``, the TorchScript exporter, opset 17, constant
folding): the converted generator computes exactly what the exported one did, and a pipeline whose
tensors do not map strictly is refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from stereocrafter.models.migan import PUBLISHED, MiganGenerator, generator_from_state, load_migan
from stereocrafter.models.migan_onnx import cached_source, convert, state_dict_from_onnx
from stereocrafter.testing.migan_export import export_pipeline
from stereocrafter.testing.weights import TINY_MIGAN, random_migan
from tests.support.migan_reference import reference_generator


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[MiganGenerator, Path]:
    generator = random_migan(TINY_MIGAN, seed=3)
    return generator, export_pipeline(generator, tmp_path_factory.mktemp("onnx") / "migan_pipeline_v2.onnx")


def _same_outputs(original: MiganGenerator, state: dict[str, torch.Tensor], resolution: int) -> None:
    converted = generator_from_state(state, "converted")
    x = torch.randn(2, 4, resolution, resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = original(x)
        assert torch.equal(converted(x), expected)  # exactly, not approximately
        assert torch.equal(reference_generator(state, x), expected)  # the published forward agrees


def test_the_converted_generator_gives_exactly_the_exported_ones_outputs(exported) -> None:
    generator, path = exported
    state = state_dict_from_onnx(path)
    original = generator.state_dict()
    assert set(state) == set(original)
    for key, value in state.items():
        if key.endswith(".noise_strength"):
            assert value.item() == 1.0  # the folded product is the noise now
        elif key.endswith(".noise_const"):
            strength = original[key.replace("noise_const", "noise_strength")]
            assert torch.equal(value, original[key] * strength)
        else:
            assert torch.equal(value, original[key]), key
    _same_outputs(generator, state, TINY_MIGAN.resolution)


def test_the_conversion_is_cached_as_safetensors_with_its_source(exported, tmp_path: Path) -> None:
    generator, path = exported
    cache = convert(path, tmp_path / "converted.safetensors", "ab" * 32)
    assert cached_source(cache) == "ab" * 32
    loaded = load_migan(cache)
    x = torch.randn(1, 4, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), generator(x))
    assert cached_source(path) is None  # not one of ours


def _rewrite(source: Path, target: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    model = onnx.load(str(source))
    edit(model.graph)
    onnx.save(model, str(target))
    return target


def test_a_renamed_tensor_is_refused_by_name(exported, tmp_path: Path) -> None:
    _, path = exported
    old = "model.encoder.b32.conv1.conv1.weight"

    def rename(graph) -> None:  # type: ignore[no-untyped-def]
        for init in graph.initializer:
            if init.name == old:
                init.name = "model.encoder.b32.conv1.conv1.weights"
        for node in graph.node:
            node.input[:] = ["model.encoder.b32.conv1.conv1.weights" if n == old else n for n in node.input]

    with pytest.raises(
        ValueError, match=r"unknown generator tensors \['model.encoder.b32.conv1.conv1.weights'\]"
    ):
        state_dict_from_onnx(_rewrite(path, tmp_path / "renamed.onnx", rename))


def test_a_missing_tensor_is_refused_by_name(exported, tmp_path: Path) -> None:
    _, path = exported
    name = "model.synthesis.b16.torgb.bias"

    def drop(graph) -> None:  # type: ignore[no-untyped-def]
        kept = [init for init in graph.initializer if init.name != name]
        del graph.initializer[:]
        graph.initializer.extend(kept)

    with pytest.raises(ValueError, match=f"the generator tensor {name} is missing"):
        state_dict_from_onnx(_rewrite(path, tmp_path / "dropped.onnx", drop))


def test_a_reshaped_tensor_is_refused_by_name(exported, tmp_path: Path) -> None:
    _, path = exported
    name = "model.synthesis.b64.conv2.conv2.weight"

    def reshape(graph) -> None:  # type: ignore[no-untyped-def]
        for index, init in enumerate(graph.initializer):
            if init.name == name:
                value = numpy_helper.to_array(init)
                wider = np.concatenate([value, value[:1]], axis=0)
                graph.initializer[index].CopyFrom(numpy_helper.from_array(wider, name))

    with pytest.raises(ValueError, match=rf"{name} is \(5, 4, 1, 1\), expected \(4, 4, 1, 1\)"):
        state_dict_from_onnx(_rewrite(path, tmp_path / "reshaped.onnx", reshape))


def test_a_missing_noise_constant_is_refused(exported, tmp_path: Path) -> None:
    _, path = exported

    def unfold(graph) -> None:  # type: ignore[no-untyped-def]
        for node in graph.node:
            if node.name == "/model/synthesis/b32/conv2/Add":
                node.op_type = "Sub"

    with pytest.raises(ValueError, match=r"2 folded noise constants of synthesis.b32 \(32x32\), found 1"):
        state_dict_from_onnx(_rewrite(path, tmp_path / "unfolded.onnx", unfold))


def test_without_scope_names_the_noise_is_found_by_graph_order(exported, tmp_path: Path) -> None:
    """An exporter that wrote no scope names into the node names (older torch): the two adds of each
    resolution in graph order are conv1's and conv2's."""
    generator, path = exported

    def anonymous(graph) -> None:  # type: ignore[no-untyped-def]
        for number, node in enumerate(graph.node):
            node.name = f"node_{number}"

    state = state_dict_from_onnx(_rewrite(path, tmp_path / "anonymous.onnx", anonymous))
    _same_outputs(generator, state, TINY_MIGAN.resolution)


def test_not_an_onnx_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "migan_pipeline_v2.onnx"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        state_dict_from_onnx(bad)


@pytest.mark.slow  # 14 s: the export and two calls at 512x512 on 2 cores
def test_at_the_published_widths_the_conversion_is_exact(tmp_path: Path) -> None:
    generator = random_migan(PUBLISHED, seed=5)
    path = export_pipeline(generator, tmp_path / "migan_pipeline_v2.onnx")
    state = state_dict_from_onnx(path)
    assert len(state) == 177 and sum(v.numel() for k, v in state.items() if not k.endswith("_const")) > 5.9e6
    converted = generator_from_state(state, "converted")
    x = torch.randn(1, 4, 512, 512, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(converted(x), generator(x))
