"""The fill benchmark's scenes: the true right view agrees with the splat wherever the splat saw the
surface, and holds the hidden layer's texture in the holes."""

from __future__ import annotations

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


def test_the_benchmark_has_its_four_scenes() -> None:
    names = [s.name for s in scenes()]
    assert names == [
        "still layers",
        "moving foreground, still background",
        "camera pan",
        "two movers, slow pan",
    ]
    assert render(scenes()[2], 3)["left"].shape == (3, 96, 192)
