"""MI-GAN's published state dict recovered from the authors' ONNX pipeline (``migan_pipeline_v2.onnx``
or ``migan.onnx`` in ``andraniksargsyan/migan``; code and weights MIT).

The authors made the ONNX file by wrapping the inference ``Generator`` as the submodule ``model`` of
their ``MIGAN_Pipeline`` (crop, resize, blend) and exporting it with the TorchScript exporter at opset
17 with constant folding. The generator's tensors are therefore initializers of the graph:

- every learned tensor (convolution weights and biases) under its own name, ``model.<state-dict key>``:
  taken by name and shape, strictly (a tensor missing, renamed, of another shape, or an unknown
  ``model.*`` tensor refuses the file, naming it);
- each synthesis convolution's frozen noise (``noise_const``, res x res) times its learned
  ``noise_strength`` was folded into one constant with a generated name. It is found by the graph
  node that adds it (``/model/synthesis/b<res>/conv<1|2>/Add``; where an exporter wrote no scope
  names, the two adds of each resolution in graph order) and kept as the noise with a strength of 1:
  ``x + product * 1.0`` is ``x + product`` exactly, so the generator computes what the exported one did;
- the fixed filters (the blur kernels, the upsampling pattern) are the architecture's constants; any
  of them the file names must equal them.

The result loads strictly into ``models.migan.MiganGenerator`` and is cached as safetensors.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import torch

from stereocrafter.models.migan import MiganGenerator, architecture_of

PREFIX = "model."
_SCOPE = re.compile(r"/model/synthesis/b(\d+)/(conv[12])/Add")


def _fixed(key: str) -> bool:
    return key.endswith(".filter_const") or key.endswith(".filter.weight")


def _tensors(graph: object) -> tuple[dict[str, np.ndarray], list[object]]:
    """Every constant of the graph by name (initializers and Constant nodes), and its nodes in order."""
    from onnx import numpy_helper

    found = {init.name: numpy_helper.to_array(init) for init in graph.initializer}  # type: ignore[attr-defined]
    nodes = list(graph.node)  # type: ignore[attr-defined]
    for node in nodes:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    found[node.output[0]] = numpy_helper.to_array(attribute.t)
    return found, nodes


def _folded_noise(
    tensors: dict[str, np.ndarray], nodes: list[object], resolutions: list[int], where: str
) -> dict[str, np.ndarray]:
    """``synthesis.b<res>.conv<i>`` -> the folded product of its noise and strength (see the module)."""
    by_res: dict[int, list[tuple[str | None, np.ndarray]]] = {res: [] for res in resolutions}
    for node in nodes:
        if node.op_type != "Add":  # type: ignore[attr-defined]
            continue
        for name in node.input:  # type: ignore[attr-defined]
            value = tensors.get(name)
            if (
                name.startswith(PREFIX)
                or value is None
                or value.ndim != 2
                or value.shape[0] != value.shape[1]
            ):
                continue
            if value.shape[0] in by_res:
                scope = _SCOPE.search(node.name)  # type: ignore[attr-defined]
                if scope is not None and int(scope.group(1)) != value.shape[0]:
                    raise ValueError(f"{where}: {node.name} adds a {value.shape} constant")  # type: ignore[attr-defined]
                by_res[value.shape[0]].append((scope.group(2) if scope else None, value))
    products = {}
    for res, found in by_res.items():
        if len(found) != 2:
            raise ValueError(
                f"{where}: expected the 2 folded noise constants of synthesis.b{res} ({res}x{res}), "
                f"found {len(found)}"
            )
        scopes = [scope for scope, _ in found]
        if scopes == ["conv2", "conv1"]:
            found.reverse()
        elif scopes not in (["conv1", "conv2"], [None, None]):
            raise ValueError(f"{where}: the noise adds of synthesis.b{res} are named {scopes}")
        for conv, (_, value) in zip(("conv1", "conv2"), found, strict=True):
            products[f"synthesis.b{res}.{conv}"] = value
    return products


def state_dict_from_onnx(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The generator's state dict in the published key layout from an MI-GAN ONNX pipeline at ``path``;
    ``ValueError`` naming the tensor when the file does not hold exactly the generator's tensors."""
    import onnx

    where = Path(path).name
    try:
        graph = onnx.load(str(path)).graph
    except Exception as err:  # a truncated or foreign file: the library's own reason, one line
        raise ValueError(f"{where} is not a readable ONNX model ({type(err).__name__})") from None
    tensors, nodes = _tensors(graph)
    named = {k[len(PREFIX) :]: v for k, v in tensors.items() if k.startswith(PREFIX)}
    try:
        arch = architecture_of({k: torch.from_numpy(np.array(v)) for k, v in named.items()})
    except (KeyError, ValueError) as err:
        raise ValueError(f"{where} holds no MI-GAN generator under 'model.': {err}") from None
    expected = MiganGenerator(arch).state_dict()
    unknown = sorted(set(named) - set(expected))
    if unknown:
        raise ValueError(f"{where}: unknown generator tensors {[PREFIX + k for k in unknown[:5]]}")
    noise_layers = sorted({k.rsplit(".", 1)[0] for k in expected if k.endswith(".noise_const")})
    folded_layers = [layer for layer in noise_layers if f"{layer}.noise_const" not in named]
    resolutions = sorted({int(layer.split(".")[1][1:]) for layer in folded_layers})
    products = _folded_noise(tensors, nodes, resolutions, where)
    state: dict[str, torch.Tensor] = {}
    for key, reference in expected.items():
        layer = key.rsplit(".", 1)[0]
        if layer in products and key.endswith((".noise_const", ".noise_strength")):
            value = products[layer] if key.endswith(".noise_const") else np.ones((), np.float32)
        elif key in named:
            value = named[key]
            if _fixed(key) and not np.array_equal(value, reference.numpy()):
                raise ValueError(f"{where}: {PREFIX}{key} is not the architecture's fixed filter")
        elif _fixed(key):
            value = reference.numpy()  # fixed by the architecture: not learned, folded away by the export
        else:
            raise ValueError(f"{where}: the generator tensor {PREFIX}{key} is missing")
        if tuple(value.shape) != tuple(reference.shape):
            raise ValueError(
                f"{where}: {PREFIX}{key} is {tuple(value.shape)}, expected {tuple(reference.shape)}"
            )
        state[key] = torch.from_numpy(np.array(value, dtype=np.float32))
    return state


def convert(onnx_path: str | os.PathLike[str], target: str | os.PathLike[str], source_sha256: str) -> Path:
    """``state_dict_from_onnx`` saved as safetensors at ``target`` (written whole, then renamed), with
    the ONNX file's digest in its metadata (``load_cached`` checks it)."""
    from safetensors.torch import save_file

    target = Path(target)
    state = state_dict_from_onnx(onnx_path)
    temp = target.with_name(f".{target.name}.partial")
    save_file(state, str(temp), metadata={"source": Path(onnx_path).name, "source_sha256": source_sha256})
    os.replace(temp, target)
    return target


def cached_source(path: str | os.PathLike[str]) -> str | None:
    """The ONNX digest a cached conversion was made from (None: not one of ours)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except Exception:
        return None
    return metadata.get("source_sha256")
