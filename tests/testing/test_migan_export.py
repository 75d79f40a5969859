"""The test-side ONNX export of MI-GAN (``stereocrafter.testing.migan_export``) has the published file's
interface and graph layout: inputs ``image`` and ``mask`` (uint8, dynamic height and width), output
``result``, opset 17, the generator's learned tensors as ``model.*`` initializers."""

from __future__ import annotations

from pathlib import Path

import onnx

from stereocrafter.testing.migan_export import export_pipeline
from stereocrafter.testing.weights import TINY_MIGAN, random_migan


def test_the_export_has_the_published_interface(tmp_path: Path) -> None:
    generator = random_migan(TINY_MIGAN)
    model = onnx.load(str(export_pipeline(generator, tmp_path / "p.onnx")))
    graph = model.graph
    assert [i.name for i in graph.input] == ["image", "mask"] and [o.name for o in graph.output] == ["result"]
    uint8 = onnx.TensorProto.UINT8
    assert {i.type.tensor_type.elem_type for i in graph.input} == {uint8}
    dims = [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch_size", "", "height", "width"]
    assert model.opset_import[0].version == 17
    names = {init.name for init in graph.initializer}
    learned = [k for k, _ in generator.named_parameters() if "noise_strength" not in k and "filter" not in k]
    assert all(f"model.{key}" in names for key in learned)
