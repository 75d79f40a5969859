"""The ``clean`` preset's inpainting stage: MI-GAN on tiles that hold holes, the foreground beside a
hole hidden from the generator, its fill kept only inside the holes, the file loaded strictly."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import WeightsCorruptError
from stereocrafter.models.migan import composite, model_input
from stereocrafter.pipeline.loading import load_stereo_pipeline
from stereocrafter.stages.migan import (
    FOREGROUND_BAND_PX,
    MIN_OVERLAP_PX,
    MiganStage,
    MiganTiles,
    context_mask,
    tile_starts,
    tile_weights,
)
from stereocrafter.stereo.splatting import forward_splat
from stereocrafter.testing.fillscenes import Layer, Scene, render
from stereocrafter.testing.weights import MIGAN_REPO, TINY_MIGAN, random_migan


def test_tiles_cover_the_frame_and_overlap_by_at_least_32_px_where_they_meet() -> None:
    assert tile_starts(64, 512) == [0] and tile_starts(512, 512) == [0]
    assert tile_starts(1024, 512) == [0, 256, 512] and tile_starts(576, 512) == [0, 64]
    assert tile_starts(1000, 512) == [0, 244, 488] and tile_starts(990, 512) == [0, 478]
    for size in range(513, 2200, 7):
        starts = tile_starts(size, 512)
        assert starts[0] == 0 and starts[-1] == size - 512
        assert all(a + 512 - b >= MIN_OVERLAP_PX for a, b in itertools.pairwise(starts))
    for starts in ([0, 256, 512], [0, 64], [0, 478]):  # the ramps of neighbours add up to 1
        total = torch.zeros(starts[-1] + 512)
        for start, weight in zip(starts, tile_weights(starts, 512), strict=True):
            total[start : start + 512] += weight
        assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    call = MiganStage.warmup_calls(StereoConfig.from_preset("clean"), (1080, 1920))[0]
    assert (call.batch, call.size) == (32, (512, 512))  # 1024x576: 3 x 2 tiles x 16 frames, 32 a call


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
    out = tiles(f["view"][None], holes[None], disparity[None])[0]
    x = torch.cat(seen)
    starts = tile_starts(128, 64)  # 0, 21, 43, 64 (a hole at the left border too: all four run)
    assert x.shape == (4, 4, 64, 64) and starts == [0, 21, 43, 64]
    mask = foreground_near[0, :, 43:107]  # foreground pixels near the hole: no colour, "unknown"
    assert int(mask.sum()) > 10
    assert bool((x[2, 0][mask] == -0.5).all()) and bool((x[2, 1:][:, mask] == 0).all())
    # the fill only inside the holes; elsewhere the splat itself, bit for bit
    assert torch.equal(out[:, ~holes[0]], f["view"][:, ~holes[0]])
    # one tile (a 64 px frame): the published composition exactly
    view, ctx, inside = f["view"][None, :, :, 64:], known[None, :, :, 64:], holes[:, :, 64:]
    one = tiles(view, inside[None], disparity[None, :, :, 64:])[0]
    expected = composite(view, ctx, generator(model_input(view, ctx)))[0]
    assert torch.allclose(one[:, inside[0]], expected[:, inside[0]], atol=1e-6)


def test_a_hole_across_tile_boundaries_shows_no_step() -> None:
    """Where a tile begins or ends inside a hole, the fill changes from one column to the next no
    more than the generator's own texture does elsewhere (an unweighted mean of overlapping tiles,
    or a hard cut, puts the largest step of the row exactly there)."""
    generator = random_migan(TINY_MIGAN, seed=1).eval()
    view = torch.linspace(0, 1, 200).view(1, 1, 1, 200).expand(1, 3, 64, 200).contiguous()
    holes = torch.zeros(1, 1, 64, 200, dtype=torch.bool)
    holes[..., 8:56, 4:196] = True  # a wide hole across all six 64 px tiles
    with torch.no_grad():
        out = MiganTiles(generator)(view, holes, torch.zeros(1, 1, 64, 200))
    columns = out[0, :, 10:54, 4:196].mean((0, 1))
    steps = (columns[1:] - columns[:-1]).abs()  # steps[j]: from x = 4 + j to 5 + j
    starts = tile_starts(200, 64)
    edges = sorted({s for s in starts[1:]} | {s + 64 for s in starts[:-1]})
    at_edges = torch.zeros_like(steps, dtype=torch.bool)
    at_edges[torch.tensor([e - 5 for e in edges])] = True
    assert float(steps[at_edges].max()) <= 0.5 * float(steps[~at_edges].max())
    assert float(steps[at_edges].max()) <= 3 * float(steps.median())


def test_only_the_tiles_that_hold_a_hole_run() -> None:
    generator = random_migan(TINY_MIGAN)
    batches: list[int] = []
    generator.register_forward_hook(lambda module, args, out: batches.append(args[0].shape[0]))
    view, disparity = torch.rand(3, 40, 200), torch.zeros(1, 40, 200)
    holes = torch.zeros(1, 40, 200, dtype=torch.bool)
    holes[..., 10:20, 5:12] = True  # in the first of the 6 tiles across only
    out = MiganTiles(generator)(view[None], holes[None], disparity[None])[0]
    assert tile_starts(200, 64) == [0, 27, 54, 82, 109, 136] and batches == [1]
    assert torch.equal(out[:, ~holes[0]], view[:, ~holes[0]]) and not torch.equal(out, view)
    holes[..., 30:35, 180:190] = True  # and now in the last one too (136..200, past the fifth's 173)
    batches.clear()
    MiganTiles(generator)(
        torch.stack([view, view]), torch.stack([holes, holes]), torch.stack([disparity] * 2)
    )
    assert batches == [4]  # two tiles of each of two frames, in one call


def test_a_frame_without_holes_runs_no_tile() -> None:
    generator = random_migan(TINY_MIGAN)
    calls: list[int] = []
    generator.register_forward_hook(lambda *_: calls.append(1))
    view = torch.rand(3, 40, 100)
    out = MiganTiles(generator)(
        view[None], torch.zeros(1, 1, 40, 100, dtype=torch.bool), torch.zeros(1, 1, 40, 100)
    )
    assert torch.equal(out[0], view) and calls == []


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


def test_the_stage_states_its_flops_per_frame_from_its_tiles() -> None:
    config = StereoConfig.from_preset("clean")
    at_1080p = MiganStage.cost(config, (1080, 1920))  # works at 1024x576: 3 x 2 tiles
    one_tile = MiganStage.cost(config, (512, 512))
    assert one_tile.calls[0][2] == 1.0 and at_1080p.calls[0][2] == 6.0
    assert round(one_tile.flops_per_frame / 1e9, 1) == 30.2  # the published 512 generator, per tile
    assert at_1080p.flops_per_frame == 6 * one_tile.flops_per_frame
