"""A weight-free hole fill for the splatted right view (the ``instant`` preset): pure torch, no weights.

A disocclusion of a right view is background that the foreground hid from the left eye; its two
sides in the row are the foreground (larger disparity, nearer) and the background (smaller
disparity, farther). The fill, row by row (stereo holes are horizontal runs):

1. **Background side.** For every hole pixel the nearest known pixel to its left and to its right;
   the side whose pixel has the smaller disparity is the background (at the image border the one
   side there is). The foreground side is never a source.
2. **Continue the texture** rather than smear one pixel: the hole pixel at distance k from the
   background boundary takes the background pixel at distance k on the other side of it (a mirror
   about the boundary): continuous at the boundary, the background's own texture inside. A mirrored
   source that is not background (a hole, or a pixel whose disparity is more than
   ``DISPARITY_TOLERANCE_PX`` from the boundary's, or off the frame) falls back to the boundary pixel.
   The result depends only on the frame's own colours and disparities at that place, so it is as
   stable from frame to frame as the depth is.
3. **What was seen before** (``BackgroundMemory``): the last colour and disparity observed at every
   right-view pixel, with its age. A hole pixel whose remembered pixel was background there (its
   disparity within the tolerance of the hole's background side, or farther) and is at most
   ``MEMORY_FRAMES`` frames old takes the remembered colour: the exact background when a foreground
   moves over a still background. A global horizontal shift of the view (a slow pan, at most
   ``MAX_SHIFT_PX`` per frame) is found by matching the memory to the frame and applied to it; when
   no shift matches (a cut, a fast or complex camera move) the memory is dropped and step 2 alone
   fills. Only frames before the current one are remembered (the fill streams).

Where nothing was seen and the mirrored source is no background either (a hole wider than the
background beside it, a whole row of holes) the fill is the boundary pixel, then, for rows with no
known pixel at all, the nearest filled pixel of the column.
"""

from __future__ import annotations

import torch

DISPARITY_TOLERANCE_PX = 1.0  # a source within this of the background boundary's disparity is background
MEMORY_FRAMES = 48  # how old a remembered background pixel may be (2 s at 24 fps)
MAX_SHIFT_PX = 8  # the largest per-frame pan the memory follows
MATCH_TOLERANCE = 0.06  # mean absolute difference in [0, 1] above which the memory is dropped


def _nearest_known(known: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """known (..., w) bool -> the index of the nearest known pixel at or left of each pixel (-1:
    none) and at or right of it (w: none)."""
    w = known.shape[-1]
    x = torch.arange(w, device=known.device).expand_as(known)
    left = torch.where(known, x, torch.full_like(x, -1)).cummax(dim=-1).values
    right = torch.where(known, x, torch.full_like(x, w)).flip(-1).cummin(dim=-1).values.flip(-1)
    return left, right


def background_side(
    holes: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """holes (t, 1, h, w) bool (True = hole), disparity (t, 1, h, w) in pixels (larger = nearer) ->
    per pixel: the index of its hole's background boundary pixel in the row (-1 where none), the
    direction from the hole to it (+1: the background is on the right, -1: on the left, 0: no known
    pixel in the row) and that boundary's disparity."""
    known = ~holes
    left, right = _nearest_known(known)
    w = holes.shape[-1]
    has_left, has_right = left >= 0, right < w
    d_left = torch.gather(disparity, -1, left.clamp(0, w - 1))
    d_right = torch.gather(disparity, -1, right.clamp(0, w - 1))
    use_right = has_right & (~has_left | (d_right <= d_left))
    use_left = has_left & ~use_right
    boundary = torch.where(use_right, right, torch.where(use_left, left, torch.full_like(left, -1)))
    direction = use_right.long() - use_left.long()
    d_boundary = torch.where(use_right, d_right, d_left)
    return boundary, direction, d_boundary


def spatial_fill(
    view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, tolerance: float = DISPARITY_TOLERANCE_PX
) -> torch.Tensor:
    """Steps 1 and 2 of the module docstring on a batch: view (t, 3, h, w) in [0, 1], holes
    (t, 1, h, w) bool, disparity (t, 1, h, w) -> the view with every hole pixel filled."""
    t, c, h, w = view.shape
    boundary, direction, d_boundary = background_side(holes, disparity)
    x = torch.arange(w, device=view.device).view(1, 1, 1, w)
    mirrored = 2 * boundary - x  # the pixel as far beyond the boundary as this one is before it
    inside = (boundary >= 0) & (mirrored >= 0) & (mirrored < w)
    source = mirrored.clamp(0, w - 1)
    d_source = torch.gather(disparity, -1, source)
    good = inside & ~torch.gather(holes, -1, source) & ((d_source - d_boundary).abs() <= tolerance)
    pick = torch.where(good, source, boundary.clamp(0, w - 1))  # else the boundary pixel itself
    filled = torch.gather(view, -1, pick.expand(t, c, h, w))
    out = torch.where(holes, filled, view)
    orphans = holes & (direction == 0)  # rows without a known pixel: the column's nearest fill
    if bool(orphans.any()):
        out = _fill_columns(out, orphans)
    return out


def _fill_columns(view: torch.Tensor, missing: torch.Tensor) -> torch.Tensor:
    """Each missing pixel takes the nearest non-missing pixel above it, else below it."""
    known = ~missing.transpose(-1, -2)  # (t, 1, w, h): rows become columns
    above, below = _nearest_known(known)
    h = missing.shape[-2]
    pick = torch.where(above >= 0, above, below).clamp(0, h - 1).transpose(-1, -2)
    gathered = torch.gather(view, -2, pick.expand_as(view))
    return torch.where(missing, gathered, view)


class BackgroundMemory:
    """Step 3 of the module docstring: the last observed colour and disparity of every right-view
    pixel of one clip, frame by frame in order (``fill`` calls ``use`` then ``observe``)."""

    def __init__(self, max_age: int = MEMORY_FRAMES, max_shift: int = MAX_SHIFT_PX) -> None:
        self.max_age, self.max_shift = max_age, max_shift
        self.colour: torch.Tensor | None = None  # (3, h, w)
        self.disparity: torch.Tensor | None = None  # (1, h, w)
        self.age: torch.Tensor | None = None  # (1, h, w) frames since seen; max_age + 1: never
        self.shifts: list[int] = []  # the shift found per frame (None-free: 0 after a reset)
        self.resets = 0

    def _align(self, view: torch.Tensor, known: torch.Tensor) -> bool:
        """Shift the memory by the horizontal pan that matches it best to this frame's known pixels;
        False (and the memory dropped) when none matches within ``MATCH_TOLERANCE``."""
        assert self.colour is not None and self.age is not None and self.disparity is not None
        seen = self.age <= self.max_age
        best: tuple[float, int] | None = None
        for shift in range(-self.max_shift, self.max_shift + 1):
            both = _shifted(seen, shift, False) & known
            count = int(both.sum())
            if count < 0.05 * known.numel():
                continue
            diff = (_shifted(self.colour, shift, 0.0) - view).abs().mean(0, keepdim=True)
            score = float((diff * both).sum()) / count
            if best is None or score < best[0] - 1e-9 or (abs(score - best[0]) <= 1e-9 and abs(shift) < abs(best[1])):
                best = (score, shift)
        if best is None or best[0] > MATCH_TOLERANCE:
            self.colour = self.disparity = self.age = None
            self.resets += 1
            self.shifts.append(0)
            return False
        shift = best[1]
        self.shifts.append(shift)
        if shift:
            self.colour = _shifted(self.colour, shift, 0.0)
            self.disparity = _shifted(self.disparity, shift, 0.0)
            self.age = _shifted(self.age, shift, self.max_age + 1)
        return True

    def use(
        self, view: torch.Tensor, holes: torch.Tensor, d_boundary: torch.Tensor, tolerance: float
    ) -> torch.Tensor:
        """(1, h, w) bool: the hole pixels of this frame (view (3, h, w), holes (1, h, w)) that take
        the remembered colour (after ``_align``), written into ``view`` in place."""
        if self.colour is None or not self._align(view, ~holes):
            return torch.zeros_like(holes)
        assert self.disparity is not None and self.age is not None
        usable = holes & (self.age <= self.max_age) & (self.disparity <= d_boundary + tolerance)
        view.copy_(torch.where(usable, self.colour, view))
        return usable

    def observe(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor) -> None:
        """Remember this frame's known pixels (not what was filled)."""
        known = ~holes
        if self.colour is None:
            self.colour = torch.zeros_like(view)
            self.disparity = torch.zeros_like(disparity)
            self.age = torch.full_like(disparity, float(self.max_age + 1))
        assert self.disparity is not None and self.age is not None
        self.colour = torch.where(known, view, self.colour)
        self.disparity = torch.where(known, disparity, self.disparity)
        self.age = torch.where(known, torch.zeros_like(self.age), (self.age + 1).clamp(max=self.max_age + 1))


def _shifted(x: torch.Tensor, shift: int, fill: float | bool) -> torch.Tensor:
    """x (..., w) moved right by ``shift`` pixels (left when negative), ``fill`` coming in."""
    if shift == 0:
        return x
    out = torch.full_like(x, fill)
    if shift > 0:
        out[..., shift:] = x[..., :-shift]
    else:
        out[..., :shift] = x[..., -shift:]
    return out


def fill(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    memory: BackgroundMemory | None = None,
    tolerance: float = DISPARITY_TOLERANCE_PX,
) -> torch.Tensor:
    """The whole fill of a batch of consecutive frames: view (t, 3, h, w) in [0, 1], holes
    (t, 1, h, w) bool, disparity (t, 1, h, w) in pixels of this size -> the filled view. With a
    ``memory`` the frames go through it in order (and it keeps them for the next batch); without
    one the fill is spatial only."""
    out = spatial_fill(view, holes, disparity, tolerance)
    if memory is None:
        return out
    _, _, d_boundary = background_side(holes, disparity)
    for i in range(view.shape[0]):
        memory.use(out[i], holes[i], d_boundary[i], tolerance)
        memory.observe(view[i], holes[i], disparity[i])
    return out
