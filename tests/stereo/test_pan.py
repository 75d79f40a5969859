"""The pan search of the fill's memory: whole-pixel pans found exactly, a slow pan's fractions
added up, a moving foreground over a still background not taken for a pan, a cut seen as one, and
nothing read back by the host (the search runs under ``torch.compile(fullgraph=True)``'s rules:
plain tensor work)."""

from __future__ import annotations

import torch

from stereocrafter.stereo.pan import anchor, pan_rows, pan_shifts
from stereocrafter.testing.fillscenes import Layer, Scene, render


def _rows(scene: Scene, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    left = torch.stack([render(scene, t)["left"] for t in range(frames)])
    return pan_rows(left, torch.zeros(frames, 1, *left.shape[-2:], dtype=torch.bool))


def _before(grey: torch.Tensor, known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros_like(grey[0]), torch.zeros_like(known[0])  # nothing before the chunk


def test_a_whole_pixel_pan_is_found_exactly_and_the_first_frame_is_a_cut() -> None:
    grey, known = _rows(Scene("pan", (Layer(-4.0, seed=5),), pan=3.0), 6)
    shift, cut = pan_shifts(grey, known, _before(grey, known), 8)
    assert cut.tolist() == [True] + [False] * 5  # nothing to match the first frame against
    assert torch.allclose(shift[1:], torch.full((5,), 3.0), atol=0.05)


def test_a_slow_pan_adds_up_and_a_still_background_does_not_drift() -> None:
    grey, known = _rows(Scene("slow", (Layer(-4.0, seed=5),), pan=0.5), 9)
    shift, _ = pan_shifts(grey, known, _before(grey, known), 8)
    assert abs(float(shift[1:].sum()) - 4.0) < 0.6  # 8 steps of half a pixel
    # a quarter pixel a frame: every whole-pixel step is 0; the fractions add up (the parabola
    # through an L1 error's V reads it low, 0.16 here: the anchor corrects what is left, +-2 px)
    grey, known = _rows(Scene("slower", (Layer(-4.0, seed=5),), pan=0.25), 17)
    shift, _ = pan_shifts(grey, known, _before(grey, known), 8)
    assert 2.0 < float(shift[1:].sum()) <= 4.5  # 16 steps, 4 px in truth
    mover = Scene("mover", (Layer(-8.0, seed=1), Layer(14.0, 20, 60, 20, 76, velocity=3.0, seed=4)))
    grey, known = _rows(mover, 16)
    shift, cut = pan_shifts(grey, known, _before(grey, known), 8)
    placed = torch.round(-shift[1:].cumsum(0)).to(torch.int32)
    correction = anchor(grey[1:], known[1:], (grey[0], known[0]), placed)
    assert bool(((placed + correction) == 0).all()), (placed + correction).tolist()
    assert not bool(cut[1:].any())


def test_a_cut_matches_no_shift() -> None:
    a, known_a = _rows(Scene("a", (Layer(-4.0, seed=5),)), 2)
    b, known_b = _rows(Scene("b", (Layer(-4.0, seed=9),)), 2)
    grey, known = torch.cat([a, b]), torch.cat([known_a, known_b])
    shift, cut = pan_shifts(grey, known, _before(grey, known), 8)
    assert cut.tolist() == [True, False, True, False] and float(shift[2]) == 0.0


def test_ties_go_to_no_shift() -> None:
    flat = torch.full((3, 4, 50), 0.5)
    shift, cut = pan_shifts(
        flat, torch.ones_like(flat, dtype=torch.bool), (flat[0], torch.ones(4, 50, dtype=torch.bool)), 8
    )
    assert shift.tolist() == [0.0, 0.0, 0.0] and not bool(cut.any())
