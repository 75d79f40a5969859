"""The ``clean`` preset's inpainting stage: MI-GAN on tiles that hold holes, the foreground beside a
hole hidden from the generator, its fill kept only inside the holes, the file loaded strictly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import WeightsCorruptError
from stereocrafter.models.migan import composite, model_input
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.stages.migan import FOREGROUND_BAND_PX, MiganStage, MiganTiles, context_mask, tile_starts
from stereocrafter.stereo.splatting import forward_splat
from stereocrafter.testing.fillscenes import Layer, Scene, render
from stereocrafter.testing.weights import MIGAN_REPO, TINY_MIGAN, random_migan


def test_tiles_cover_the_frame_and_overlap_only_where_they_must() -> None:
    assert tile_starts(64, 512) == [0] and tile_starts(512, 512) == [0]
    assert tile_starts(1024, 512) == [0, 512] and tile_starts(576, 512) == [0, 64]
    assert tile_starts(1000, 512) == [0, 488]
    call = MiganStage.warmup_calls(StereoConfig.from_preset("clean"), (1080, 1920))[0]
    assert (call.batch, call.size) == (4, (512, 512))  # its working size 1024x576: 2 x 2 tiles


def _frame() -> dict[str, torch.Tensor]:
    scene = Scene("fg", (Layer(-6.0, seed=1), Layer(10.0, 40, 80, 8, 56, seed=4)), height=64, width=128)
    r = render(scene, 0)
    splat, occlusion = forward_splat(torch.cat([r["left"], r["disparity"]])[None], r["disparity"][None])
    return {"view": splat[0, :3].clamp(0, 1), "disparity": splat[0, 3:], "holes": occlusion[0] >= 0.5}


def test_the_foreground_beside_a_hole_is_hidden_from_the_generator() -> None:
    f = _frame()
    known = context_mask(f["holes"], f["disparity"])
    holes, disparity = f["holes"], f["disparity"]
    assert bool((known[holes] == 0).all())
    near = (
        torch.nn.functional.max_pool2d(
            holes[None].float(), 2 * FOREGROUND_BAND_PX + 1, 1, FOREGROUND_BAND_PX
        )[0]
        > 0
    )
    foreground_near = near & ~holes & (disparity > 5.0)
    background_near = near & ~holes & (disparity < -5.0)
    assert int(foreground_near.sum()) > 50 and int(background_near.sum()) > 50
    assert bool((known[foreground_near] == 0).all()) and bool((known[background_near] == 1).all())
    assert bool((known[~near & ~holes] == 1).all())  # far from the holes the foreground is context

    seen: list[torch.Tensor] = []
    generator = random_migan(TINY_MIGAN)
    generator.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    tiles = MiganTiles(generator.eval())
    out = tiles(f["view"], holes, disparity)
    x = torch.cat(seen)
    assert x.shape[1:] == (4, 64, 64) and x.shape[0] == 2  # two 64 px tiles across 128 px, both with holes
    left = x[0]  # tile at x 0..64: foreground pixels near the hole carry no colour and "unknown"
    mask = foreground_near[0, :, :64]
    assert bool((left[0][mask] == -0.5).all()) and bool((left[1:][:, mask] == 0).all())
    # the fill only inside the holes; elsewhere the splat itself, bit for bit
    assert torch.equal(out[:, ~holes[0]], f["view"][:, ~holes[0]])
    view, ctx = f["view"][None, :, :, :64], known[None, :, :, :64]
    expected = composite(view, ctx, generator(model_input(view, ctx)))[0]
    inside = holes[0, :, :64]
    assert torch.allclose(out[:, :, :64][:, inside], expected[:, inside], atol=1e-6)


def test_only_the_tiles_that_hold_a_hole_run() -> None:
    generator = random_migan(TINY_MIGAN)
    batches: list[int] = []
    generator.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    view, disparity = torch.rand(3, 40, 200), torch.zeros(1, 40, 200)
    holes = torch.zeros(1, 40, 200, dtype=torch.bool)
    holes[..., 10:20, 5:12] = True  # in the first of the 4 tiles across (starts 0, 45, 91, 136) only
    out = MiganTiles(generator)(view, holes, disparity)
    assert tile_starts(200, 64) == [0, 45, 91, 136] and batches == [1]
    assert torch.equal(out[:, ~holes[0]], view[:, ~holes[0]]) and not torch.equal(out, view)
    holes[..., 30:35, 170:180] = True  # and now in the last one too (136..200, past the third's 155)
    batches.clear()
    MiganTiles(generator)(view, holes, disparity)
    assert batches == [2]


def test_a_frame_without_holes_runs_no_tile() -> None:
    generator = random_migan(TINY_MIGAN)
    calls: list[int] = []
    generator.register_forward_hook(lambda *_: calls.append(1))
    view = torch.rand(3, 40, 100)
    out = MiganTiles(generator)(view, torch.zeros(1, 40, 100, dtype=torch.bool), torch.zeros(1, 40, 100))
    assert out is view and calls == []


def test_clean_loads_only_its_files_and_refuses_a_broken_one(weights_copy: Path) -> None:
    pipeline = load_stereo_pipeline(weights_copy, presets=("clean",))
    assert list(pipeline.inpainting_stages) == ["migan"] and list(pipeline.depth_stages) == ["vda-small"]
    # an ONNX file whose generator tensor was renamed, recorded as if it were the expected bytes: the
    # digest check passes, the strict conversion refuses it by name
    import onnx

    from stereocrafter.weights.integrity import read_lock, sha256_of, update_lock

    path = weights_copy / MIGAN_REPO / "migan_pipeline_v2.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "model.encoder.b64.fromrgb.bias":
            init.name = "model.encoder.b64.fromrgb.biases"
    for node in model.graph.node:
        node.input[:] = [n.replace("fromrgb.bias", "fromrgb.biases") for n in node.input]
    onnx.save(model, str(path))
    (row,) = [r for r in read_lock(weights_copy) if r.path == "migan_pipeline_v2.onnx"]
    update_lock(weights_copy, [replace(row, size=path.stat().st_size, sha256=sha256_of(path))])
    refused = r"the migan weights .*'model\.encoder\.b64\.fromrgb\.biases'"
    with pytest.raises(WeightsCorruptError, match=refused):
        load_stereo_pipeline(weights_copy, presets=("clean",))
