"""The fill benchmark's scenes: the true right view agrees with the splat wherever the splat saw the
surface, and holds the hidden layer's texture in the holes."""

from __future__ import annotations

import torch

from stereocrafter.stereo.splatting import forward_splat
from stereocrafter.testing.fillscenes import Layer, Scene, render, scenes


def test_the_truth_matches_the_splat_where_it_sees_and_is_the_background_in_the_holes() -> None:
    scene = Scene(
        "t", (Layer(-6.0, seed=1), Layer(10.0, 40, 80, 10, 50, velocity=2.0, seed=2)), height=64, width=128
    )
    for t in (0, 5):
        r = render(scene, t)
        warped, occlusion = forward_splat(r["left"][None], r["disparity"][None])
        covered = occlusion[0, 0] < 1e-6
        interior = covered.clone()
        interior[:, :2] = interior[:, -2:] = False
        error = (warped[0] - r["right"]).abs().amax(0)
        # exact on the background; on the foreground the soft z-buffer mixes in 1/257 of the
        # background that lands under it (1.414 ** -16), the reference's splat
        background = interior & (r["right_disparity"][0] == -6.0)
        assert float(error[background].max()) < 1e-4 and float(error[interior].max()) < 0.01
        holes = occlusion[0, 0] > 0.999
        assert int(holes.sum()) > 100
        assert bool((r["right_disparity"][0][holes] == -6.0).all())  # what the foreground hid
        assert float(r["right"][:, holes].std()) > 0.02  # textured, not flat


def test_the_benchmark_has_its_five_scenes() -> None:
    names = [s.name for s in scenes()]
    assert names == [
        "still layers",
        "moving foreground, still background",
        "camera pan",
        "two movers, slow pan",
        "fine grain over large structures, pan",
    ]
    assert render(scenes()[2], 3)["left"].shape == (3, 96, 192)


def test_the_grained_background_has_fine_grain_and_large_structures() -> None:
    """Against the natural-texture scenes: more structure left after a 15 px blur, and more grain
    in what the blur takes away."""

    def parts(scene: int) -> tuple[float, float]:
        left = render(scenes()[scene], 0)["left"][None]
        low = torch.nn.functional.avg_pool2d(left, 15, 1, 7, count_include_pad=False)
        return float(low.std((2, 3)).mean()), float((left - low).std((2, 3)).mean())

    structure, grain = parts(4)
    natural_structure, natural_grain = parts(1)
    assert structure > 1.2 * natural_structure and grain > 1.4 * natural_grain
