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
   fills. The frames after it in its batch are swept the same way, backwards (``LookAhead``: up to
   15 frames ahead in the stage's chunks of 16); a pixel seen both before and after takes the
   more recent sighting.

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


def hole_sides(
    holes: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """holes (t, 1, h, w) bool (True = hole), disparity (t, 1, h, w) in pixels (larger = nearer) ->
    per pixel: the nearest known pixel to its left (-1: none) and to its right (w: none) in its
    row, their disparities, and the disparity the hole's content has (``content_disparity``)."""
    left, right = _nearest_known(~holes)
    w = holes.shape[-1]
    d_left = torch.gather(disparity, -1, left.clamp(0, w - 1))
    d_right = torch.gather(disparity, -1, right.clamp(0, w - 1))
    width = (right - left - 1).to(disparity.dtype)
    # A right view's hole opens on the right of the surface that hid it (nearer content moves left
    # more): its width is that surface's disparity minus the hidden content's. At the left border
    # (nothing on the left) the content continues what is on the right.
    content = torch.where(left >= 0, d_left - width, d_right)
    return left, right, d_left, d_right, content


def spatial_fill(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    tolerance: float = DISPARITY_TOLERANCE_PX,
) -> torch.Tensor:
    """Steps 1 and 2 of the module docstring on a batch: view (t, 3, h, w) in [0, 1], holes
    (t, 1, h, w) bool, disparity (t, 1, h, w) -> the view with every hole pixel filled."""
    w = view.shape[-1]
    left, right, d_left, d_right, content = hole_sides(holes, disparity)
    # 1. The side that is the hidden content's surface: its disparity is the content's.
    match_right = (right < w) & ((d_right - content).abs() <= tolerance)
    match_left = (left >= 0) & ((d_left - content).abs() <= tolerance)
    take_right = match_right & (~match_left | (d_right <= d_left))
    take_left = match_left & ~take_right
    # Neither side is (both are nearer surfaces, e.g. a hole between two foreground objects): the
    # farther side for now, replaced below by the column's background where there is one.
    farther_right = (right < w) & ((left < 0) | (d_right <= d_left))
    use_right = take_right | (~take_left & ~take_right & farther_right)
    boundary = torch.where(use_right, right, left).clamp(0, w - 1)
    out = _mirror(view, holes, disparity, boundary, tolerance)
    resolved = ~holes | take_right | take_left
    unresolved = holes & ~resolved
    if bool(unresolved.any()):
        out = _from_column(
            out, resolved, torch.where(holes, content, disparity), unresolved, content, tolerance
        )
    orphans = holes & (left < 0) & (right >= w)  # rows without a known pixel: the column's nearest fill
    if bool(orphans.any()):
        out = _fill_columns(out, orphans)
    return out


def _mirror(
    view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor, boundary: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """Each hole pixel takes the pixel as far beyond ``boundary`` as it is before it, when that one
    is known and on the boundary's surface (disparity within ``tolerance``), else the boundary pixel."""
    t, c, h, w = view.shape
    x = torch.arange(w, device=view.device).view(1, 1, 1, w)
    mirrored = 2 * boundary - x
    inside = (mirrored >= 0) & (mirrored < w)
    source = mirrored.clamp(0, w - 1)
    d_boundary = torch.gather(disparity, -1, boundary)
    d_source = torch.gather(disparity, -1, source)
    good = inside & ~torch.gather(holes, -1, source) & ((d_source - d_boundary).abs() <= tolerance)
    pick = torch.where(good, source, boundary)
    return torch.where(holes, torch.gather(view, -1, pick.expand(t, c, h, w)), view)


def _from_column(
    view: torch.Tensor, resolved: torch.Tensor, surface: torch.Tensor, wanted: torch.Tensor,
    content: torch.Tensor, tolerance: float,
) -> torch.Tensor:  # fmt: skip
    """The ``wanted`` pixels take the nearest resolved pixel above or below them in the column
    whose surface disparity is the content's (the nearer of the two when both are)."""
    above, below = _nearest_known(resolved.transpose(-1, -2))  # along the columns
    above, below = above.transpose(-1, -2), below.transpose(-1, -2)
    h = view.shape[-2]
    y = torch.arange(h, device=view.device).view(1, 1, h, 1)
    d_above = torch.gather(surface, -2, above.clamp(0, h - 1))
    d_below = torch.gather(surface, -2, below.clamp(0, h - 1))
    ok_above = (above >= 0) & ((d_above - content).abs() <= tolerance)
    ok_below = (below < h) & ((d_below - content).abs() <= tolerance)
    use_below = ok_below & (~ok_above | (below - y < y - above))
    pick = torch.where(use_below, below, above).clamp(0, h - 1)
    take = wanted & (ok_above | ok_below)
    return torch.where(take, torch.gather(view, -2, pick.expand_as(view)), view)


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
            if (
                best is None
                or score < best[0] - 1e-9
                or (abs(score - best[0]) <= 1e-9 and abs(shift) < abs(best[1]))
            ):
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

    def recall(
        self, view: torch.Tensor, holes: torch.Tensor, content: torch.Tensor, tolerance: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For this frame (view (3, h, w), holes (1, h, w); content: the disparity of what the
        hole hides, ``hole_sides``), after ``_align``: which hole pixels the memory can fill
        ((1, h, w) bool), with what colour (3, h, w) and how old that is (1, h, w)."""
        if self.colour is None or not self._align(view, ~holes):
            never = torch.full_like(content, float(self.max_age + 1))
            return torch.zeros_like(holes), view, never
        assert self.disparity is not None and self.age is not None
        usable = holes & (self.age <= self.max_age) & (self.disparity <= content + tolerance)
        return usable, self.colour, self.age

    def use(
        self, view: torch.Tensor, holes: torch.Tensor, content: torch.Tensor, tolerance: float
    ) -> torch.Tensor:
        """``recall``, the remembered colour written into ``view`` in place; returns the mask."""
        usable, colour, _ = self.recall(view, holes, content, tolerance)
        view.copy_(torch.where(usable, colour, view))
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


class LookAhead:
    """What the frames after each frame of a batch show: a memory swept from the batch's last frame
    to its first (``BackgroundMemory``, the same alignment), kept per frame."""

    def __init__(self, view: torch.Tensor, holes: torch.Tensor, disparity: torch.Tensor,
                 content: torch.Tensor, tolerance: float = DISPARITY_TOLERANCE_PX) -> None:  # fmt: skip
        usable, colour, age = [], [], []
        memory = BackgroundMemory()
        for i in reversed(range(view.shape[0])):
            found = memory.recall(view[i], holes[i], content[i], tolerance)
            usable.append(found[0])
            colour.append(torch.where(found[0], found[1], 0.0))  # a copy: the memory moves on
            age.append(found[2].clone())
            memory.observe(view[i], holes[i], disparity[i])
        self.usable, self.colour, self.age = usable[::-1], colour[::-1], age[::-1]


def combine(
    out: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ahead: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
) -> torch.Tensor:  # fmt: skip
    """One frame's fill (3, h, w) with what the past and the frames ahead saw: per pixel the more
    recent of the two sightings that can fill it (the past one when they are as old)."""
    usable, colour, age = past
    if ahead is None:
        return torch.where(usable, colour, out)
    a_usable, a_colour, a_age = ahead
    use_past = usable & (~a_usable | (age <= a_age))
    use_ahead = a_usable & ~use_past
    return torch.where(use_past, colour, torch.where(use_ahead, a_colour, out))


def fill(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    memory: BackgroundMemory | None = None,
    tolerance: float = DISPARITY_TOLERANCE_PX,
    ahead: bool = True,
) -> torch.Tensor:
    """The whole fill of a batch of consecutive frames: view (t, 3, h, w) in [0, 1], holes
    (t, 1, h, w) bool, disparity (t, 1, h, w) in pixels of this size -> the filled view. With a
    ``memory`` the frames go through it in order (and it keeps them for the next batch) and, with
    ``ahead``, what the batch's later frames show fills too (``LookAhead``); without one the fill
    is spatial only."""
    out = spatial_fill(view, holes, disparity, tolerance)
    if memory is None:
        return out
    content = hole_sides(holes, disparity)[4]
    later = LookAhead(view, holes, disparity, content, tolerance) if ahead else None
    for i in range(view.shape[0]):
        past = memory.recall(out[i], holes[i], content[i], tolerance)
        next_ = (later.usable[i], later.colour[i], later.age[i]) if later is not None else None
        out[i] = combine(out[i], past, next_)
        memory.observe(view[i], holes[i], disparity[i])
    return out
