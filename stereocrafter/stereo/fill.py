"""A weight-free hole fill for the splatted right view (the ``instant`` preset): pure torch, no weights.

A disocclusion of a right view is background that the foreground hid from the left eye; its two
sides in the row are the foreground (larger disparity, nearer) and the background (smaller
disparity, farther). The fill, row by row (stereo holes are horizontal runs):

1. **Background side.** For every hole pixel the nearest known pixel to its left and to its right;
   the side whose pixel has the disparity of the hidden content is the background. A hole that
   touches the frame's border hides what lay beyond the left view's frame: it continues the one side
   it has, in its own row (``hole_sides``). The foreground side is never a source.
2. **Continue the texture** rather than smear one pixel: the hole pixel at distance k from the
   background boundary takes the background pixel at distance k on the other side of it (a mirror
   about the boundary). A mirrored source that is not background (a hole, a pixel whose disparity
   is more than ``DISPARITY_TOLERANCE_PX`` from the boundary's, or off the frame) falls back to the
   boundary pixel. A hole between two nearer surfaces takes the nearest pixel of its column whose
   surface is the hidden content's; rows with no known pixel at all take their column's nearest.
3. **What was seen before and after** (``BackgroundMemory``): the last colour and disparity
   observed at every right-view pixel, with its age. A hole pixel whose remembered pixel was
   background there (its disparity at most the hidden content's plus the tolerance) and at most
   ``MEMORY_FRAMES`` frames old takes the remembered colour: the exact background when a foreground
   moves over a still background. The later frames of the chunk are looked at the same way; a pixel
   seen both before and after takes the more recent sighting (the earlier one when as old). A
   horizontal pan (at most ``MAX_SHIFT_PX`` per frame) between consecutive frames is found by
   matching their known pixels (every k-th row, all shifts at once); when no shift matches within
   ``MATCH_TOLERANCE`` (a cut, a fast or complex move) nothing from before that frame is used.

Everything is whole-chunk tensor work on the device: steps 1-2 build, per pixel, the row and column
of its source (int32 index planes) rather than moving colours; step 3 places every frame's "seen"
stamp on a canvas in the pan's world coordinates, where one running maximum over the frames gives
each pixel's latest sighting (a running minimum: its next); one gather at the end moves the
colours. No value comes back to the host (``fill_chunk`` compiles with ``fullgraph=True``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

DISPARITY_TOLERANCE_PX = 1.0  # a source within this of the background boundary's disparity is background
MEMORY_FRAMES = 48  # how old a remembered background pixel may be (2 s at 24 fps)
MAX_SHIFT_PX = 8  # the largest per-frame pan the memory follows
MATCH_TOLERANCE = 0.06  # mean absolute grey difference in [0, 1] above which the memory is dropped
MIN_OVERLAP = 0.05  # a shift is judged on at least this share of the compared pixels
PAN_ROWS = 64  # the pan search compares every k-th row, k = max(1, height // PAN_ROWS)


def nearest_known(known: torch.Tensor, dim: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
    """known bool -> int32 planes along ``dim``: the index of the nearest known pixel at or before
    each pixel (-1: none) and at or after it (the length: none)."""
    n = known.shape[dim]
    shape = [1] * known.ndim
    shape[dim] = n
    pos = torch.arange(n, dtype=torch.int32, device=known.device).view(shape)
    before = torch.where(known, pos, -1).cummax(dim).values
    after = (n - 1) - torch.where(known.flip(dim), pos, -1).cummax(dim).values.flip(dim)
    return before, after


_nearest_known = nearest_known  # the baselines of bench/fill_quality.py


def hole_sides(
    holes: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """holes (t, 1, h, w) bool (True = hole), disparity (t, 1, h, w) in pixels (larger = nearer) ->
    per pixel: the nearest known pixel to its left (-1: none) and to its right (w: none) in its
    row, their disparities, and the disparity the hole's content has (``content``).

    Between two known pixels, a right view's hole opens on the right of the surface that hid it
    (nearer content moves left more): its width is that surface's disparity minus the hidden
    content's. A hole that touches the border has one side: its content continues that side."""
    left, right = nearest_known(~holes)
    w = holes.shape[-1]
    d_left = torch.gather(disparity, -1, left.clamp(0, w - 1))
    d_right = torch.gather(disparity, -1, right.clamp(0, w - 1))
    has_left = left >= 0
    between = d_left - (right - left - 1).to(disparity.dtype)
    content = torch.where(has_left & (right < w), between, torch.where(has_left, d_left, d_right))
    return left, right, d_left, d_right, content


def spatial_source(
    holes: torch.Tensor,
    disparity: torch.Tensor,
    tolerance: float = DISPARITY_TOLERANCE_PX,
    sides: tuple[torch.Tensor, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Steps 1 and 2 of the module docstring as index planes: holes (t, 1, h, w) bool, disparity
    (t, 1, h, w) -> the row and the column (int32, (t, 1, h, w)) of the frame's pixel each pixel
    takes (its own for a known pixel)."""
    _, _, h, w = holes.shape
    left, right, d_left, d_right, content = sides if sides is not None else hole_sides(holes, disparity)
    device = holes.device
    x = torch.arange(w, dtype=torch.int32, device=device).view(1, 1, 1, w)
    y = torch.arange(h, dtype=torch.int32, device=device).view(1, 1, h, 1)
    has_left, has_right = left >= 0, right < w
    match_right = has_right & ((d_right - content).abs() <= tolerance)
    match_left = has_left & ((d_left - content).abs() <= tolerance)
    take_right = match_right & (~match_left | (d_right <= d_left))
    sided = take_right | match_left  # the hidden content's surface is one of the row's sides
    # Neither side is (both are nearer surfaces): the farther side for now, replaced below by the
    # column's background where there is one.
    farther_right = has_right & (~has_left | (d_right <= d_left))
    use_right = take_right | (~sided & farther_right)
    boundary = torch.where(use_right, right, left).clamp_(0, w - 1)
    mirrored = 2 * boundary - x
    source = mirrored.clamp(0, w - 1)
    d_boundary = torch.gather(disparity, -1, boundary)
    good = (mirrored == source) & ~torch.gather(holes, -1, source)
    good &= (torch.gather(disparity, -1, source) - d_boundary).abs() <= tolerance
    col = torch.where(holes, torch.where(good, source, boundary), x)
    # The two cases below are rare and cost whole-frame column scans: each runs only when it has
    # a pixel (``_when``: one read-back per chunk in eager mode, a ``torch.cond`` when compiled).
    row = y.expand_as(col)
    unresolved = holes & ~sided
    row, col = _when(unresolved.any(), _from_column(tolerance), (row, col, unresolved, holes, content, disparity))
    orphans = holes & ~has_left & ~has_right
    return _when(orphans.any(), _orphans, (row, col, orphans, holes, content, disparity))


def _when(pred: torch.Tensor, step: Any, operands: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """``step(*operands)`` when ``pred`` holds, else the first two operands as they are."""
    if torch.compiler.is_compiling():
        row, col = operands[0].contiguous(), operands[1]
        return torch.cond(pred, step, lambda r, c, *_: (r.clone(), c.clone()), (row, col, *operands[2:]))  # type: ignore[no-any-return]
    if bool(pred):
        return step(*operands)  # type: ignore[no-any-return]
    return operands[0], operands[1]


def _from_column(tolerance: float) -> Any:
    """A hole between two nearer surfaces (``wanted``) takes the nearest pixel of its column, above
    or below, that is resolved and whose surface is the hidden content's (the nearer of the two
    when both are)."""

    def step(row: torch.Tensor, col: torch.Tensor, wanted: torch.Tensor, holes: torch.Tensor,
             content: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        h = holes.shape[-2]
        y = torch.arange(h, dtype=torch.int32, device=holes.device).view(1, 1, h, 1)
        above, below = nearest_known(~wanted, -2)
        surface = torch.where(holes, content, disparity)
        d_above = torch.gather(surface, -2, above.clamp(0, h - 1))
        d_below = torch.gather(surface, -2, below.clamp(0, h - 1))
        ok_above = (above >= 0) & ((d_above - content).abs() <= tolerance)
        ok_below = (below < h) & ((d_below - content).abs() <= tolerance)
        pick = torch.where(ok_below & (~ok_above | (below - y < y - above)), below, above).clamp_(0, h - 1)
        take = wanted & (ok_above | ok_below)
        return torch.where(take, pick, row), torch.where(take, torch.gather(col, -2, pick), col)

    return step


def _orphans(row: torch.Tensor, col: torch.Tensor, orphans: torch.Tensor,
             *_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Rows without a known pixel: the nearest pixel of the column that has one, above, else below."""
    h = orphans.shape[-2]
    above, below = nearest_known(~orphans, -2)
    pick = torch.where(above >= 0, above, below).clamp_(0, h - 1)
    return torch.where(orphans, torch.gather(row, -2, pick), row), torch.where(orphans, torch.gather(col, -2, pick), col)


def spatial_fill(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    tolerance: float = DISPARITY_TOLERANCE_PX,
) -> torch.Tensor:
    """Steps 1 and 2 on a batch: view (t, c, h, w), holes (t, 1, h, w) bool, disparity
    (t, 1, h, w) -> the view with every hole pixel filled."""
    t, c, h, w = view.shape
    row, col = spatial_source(holes, disparity, tolerance)
    flat = (row * w + col).view(t, 1, h * w).expand(t, c, h * w)
    return view.reshape(t, c, h * w).gather(-1, flat).view(t, c, h, w)


def pan_shifts(
    grey: torch.Tensor, known: torch.Tensor, before: tuple[torch.Tensor, torch.Tensor], max_shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The horizontal pan from each frame to the next, all frames and shifts at once: grey (t, r, w)
    and known (t, r, w) bool of the chunk's frames (every k-th row), ``before`` the same of the
    frame before the chunk -> per frame the shift s in pixels (content moved s px to the right,
    float: the best integer shift refined by the parabola through its neighbours' errors, so that a
    slow pan adds up) and whether no shift matches (a cut: bool). Ties go to the smaller |s|, then
    to the leftward."""
    t, r, w = grey.shape
    prev_grey = torch.cat([before[0][None], grey[:-1]])
    prev_known = torch.cat([before[1][None], known[:-1]])
    m = max_shift
    # window k holds the previous frame at x + k - m: the frame's content moved by s = m - k
    windows = F.pad(prev_grey, (m, m)).unfold(-1, w, 1)  # (t, r, 2m + 1, w), a view
    both = F.pad(prev_known, (m, m)).unfold(-1, w, 1) & known[:, :, None]
    count = both.sum((1, 3))
    error = torch.where(both, (windows - grey[:, :, None]).abs(), 0.0).sum((1, 3))
    score = torch.where(count >= MIN_OVERLAP * r * w, error / count.clamp(min=1), torch.inf)
    order = torch.tensor([m] + [k for d in range(1, m + 1) for k in (m + d, m - d)], device=grey.device)
    ranked = score[:, order]  # s = 0, -1, 1, -2, 2, ...
    best = order[ranked.argmin(1)][:, None]  # k
    centre = score.gather(1, best)
    below = score.gather(1, (best - 1).clamp(min=0))
    above = score.gather(1, (best + 1).clamp(max=2 * m))
    curve = below - 2 * centre + above
    inner = (best > 0) & (best < 2 * m) & torch.isfinite(below + above) & (curve > 0)
    step = torch.where(inner, (below - above) / (2 * torch.where(inner, curve, 1.0)), 0.0).clamp(-0.5, 0.5)
    cut = ~(centre[:, 0] <= MATCH_TOLERANCE)
    return torch.where(cut, 0.0, m - best[:, 0] - step[:, 0]), cut


def anchor(
    grey: torch.Tensor, known: torch.Tensor, reference: tuple[torch.Tensor, torch.Tensor], placed: torch.Tensor
) -> torch.Tensor:
    """grey, known (t, r, w) of the chunk's frames, ``reference`` (r, w) grey and known of the frame
    their offsets count from, ``placed`` (t,) each frame's offset from it (its pixel x is the
    reference's x + placed) -> the correction in -1, 0, 1 that matches each frame to the reference
    best (0 when none matches within ``MATCH_TOLERANCE``, and on ties)."""
    t, r, w = grey.shape
    errors = []
    for d in (0, -1, 1):
        at = torch.arange(w, device=grey.device).view(1, 1, w) + (placed + d).view(t, 1, 1)
        inside = (at >= 0) & (at < w)
        at = at.clamp(0, w - 1).expand(t, r, w)
        both = inside & known & torch.gather(reference[1].expand(t, r, w), -1, at)
        error = torch.where(both, (torch.gather(reference[0].expand(t, r, w), -1, at) - grey).abs(), 0.0)
        count = both.sum((1, 2))
        errors.append(torch.where(count >= MIN_OVERLAP * r * w, error.sum((1, 2)) / count.clamp(min=1), torch.inf))
    scores = torch.stack(errors, 1)
    best = scores.argmin(1)
    ok = scores.gather(1, best[:, None])[:, 0] <= MATCH_TOLERANCE
    return torch.where(ok, torch.tensor([0, -1, 1], dtype=torch.int32, device=grey.device)[best], 0)


def _rows(view: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pan search's view of frames: grey and known on every k-th row, (t, r, w)."""
    step = max(1, view.shape[-2] // PAN_ROWS)
    return view[:, :, ::step].mean(1), ~holes[:, 0, ::step]


MemoryState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def empty_state(view: torch.Tensor, max_age: int = MEMORY_FRAMES) -> MemoryState:
    """A memory that has seen nothing, for frames like view's (t, 3, h, w): colour (3, h, w),
    disparity (1, h, w), age (1, h, w) int32 (``max_age + 1``: never), the grey rows and known
    mask of the frame before (none), and where that frame lies between whole pixels of the pan
    (a 0-d float in [-0.5, 0.5])."""
    _, _, h, w = view.shape
    grey, known = _rows(view[:1], torch.ones_like(view[:1, :1], dtype=torch.bool))
    return (torch.zeros_like(view[0]), torch.zeros_like(view[0, :1]),
            torch.full_like(view[0, :1], max_age + 1, dtype=torch.int32), grey[0], known[0],
            torch.zeros((), device=view.device))  # fmt: skip


def fill_chunk(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    state: MemoryState,
    *,
    tolerance: float = DISPARITY_TOLERANCE_PX,
    max_age: int = MEMORY_FRAMES,
    max_shift: int = MAX_SHIFT_PX,
    ahead: bool = True,
) -> tuple[torch.Tensor, MemoryState, torch.Tensor, torch.Tensor]:
    """The whole fill of a chunk of consecutive frames: view (t, 3, h, w) in [0, 1], holes
    (t, 1, h, w) bool, disparity (t, 1, h, w) in pixels, ``state`` what the clip's earlier frames
    left (``empty_state`` at its start) -> the filled view, the state after the chunk's last frame,
    each frame's pan in whole pixels (int32) and cut (see ``pan_shifts``). Pure tensor work, no
    host sync."""
    t, c, h, w = view.shape
    device = view.device
    m_colour, m_disparity, m_age, m_grey, m_known, m_phase = state
    sides = hole_sides(holes, disparity)
    content = sides[4]
    row, col = spatial_source(holes, disparity, tolerance, sides)

    grey, known_rows = _rows(view, holes)
    shift, cut = pan_shifts(grey, known_rows, (m_grey, m_known), max_shift)
    # World x of a frame's pixel x: x + offset; id 0 is the memory (the frame before the chunk),
    # id f + 1 is frame f. A cut starts a new scene: only the same scene's ids are used.
    # The pan adds up in fractions of a pixel; each frame is placed at the whole pixel nearest.
    zero = torch.zeros(1, dtype=torch.int32, device=device)
    travel = m_phase - shift.cumsum(0)
    placed = torch.round(travel).to(torch.int32)
    scene = torch.cat([zero, cut.cumsum(0, dtype=torch.int32)])
    # Fractions of a pixel that a moving foreground biases add up too: each frame of the reference's
    # scene is checked against it (the frame before the chunk, else its first) one pixel either side.
    has_before = m_known.any()
    reference = (torch.where(has_before, m_grey, grey[0]), torch.where(has_before, m_known, known_rows[0]))
    same = scene[1:] == torch.where(has_before, 0, scene[1])
    offset = torch.cat([zero, placed + torch.where(same, anchor(grey, known_rows, reference, placed), 0)])
    pad = max_shift * t + 2
    ids = torch.arange(t + 1, dtype=torch.int16, device=device).view(t + 1, 1, 1, 1)
    stamp = torch.where(torch.cat([(m_age <= max_age)[None], ~holes]), ids, -1)
    world = torch.arange(w + 2 * pad, dtype=torch.int32, device=device).view(1, 1, 1, -1)
    local = world - pad - offset.view(t + 1, 1, 1, 1)  # (t + 1, 1, 1, w + 2 pad)
    canvas = torch.gather(stamp, -1, local.clamp(0, w - 1).expand(t + 1, 1, h, -1))
    canvas = torch.where((local >= 0) & (local < w), canvas, -1)
    at = (torch.arange(w, dtype=torch.int32, device=device) + pad).view(1, 1, 1, w) + offset.view(t + 1, 1, 1, 1)
    frame_id = torch.arange(1, t + 1, dtype=torch.int32, device=device).view(t, 1, 1, 1)
    x = torch.arange(w, dtype=torch.int32, device=device).view(1, 1, 1, w)
    y = torch.arange(h, dtype=torch.int32, device=device).view(1, 1, h, 1)
    sources_disparity = torch.cat([m_disparity[None], disparity]).view(-1)

    def sighting(found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """found (t, 1, h, w): the id that saw each pixel (< 0 or > t: none) -> its flat index in
        the sources (id, y, x), whether it may fill the pixel, and how old it is."""
        valid = (found >= 0) & (found <= t)
        src = found.clamp(0, t).to(torch.int32)
        flat = (src * h + y) * w + x + offset[1:].view(t, 1, 1, 1) - offset[src]
        flat = torch.where(valid, flat, 0)
        remembered = torch.gather(m_age.view(-1), 0, (flat % (h * w)).view(-1)).view(t, 1, h, w)
        age = torch.where(src == 0, remembered + frame_id, (frame_id - src).abs())
        usable = holes & valid & (scene[src] == scene[1:].view(t, 1, 1, 1)) & (age <= max_age)
        usable &= sources_disparity[flat] <= content + tolerance
        return flat, usable, age

    past = canvas[:t].cummax(0).values  # id i: the latest of ids 0 .. i, i.e. before frame i
    flat_past, use_past, age_past = sighting(torch.gather(past, -1, at[1:].expand(t, 1, h, w)))
    flat = torch.where(use_past, flat_past, (frame_id * h + row) * w + col)
    if ahead and t > 1:
        later = torch.where(canvas[2:] >= 0, canvas[2:], t + 1).flip(0).cummin(0).values.flip(0)
        nothing = torch.full_like(later[:1], t + 1)
        found = torch.gather(torch.cat([later, nothing]), -1, at[1:].expand(t, 1, h, w))
        flat_next, use_next, age_next = sighting(found)
        use_next &= ~use_past | (age_next < age_past)
        flat = torch.where(use_next, flat_next, flat)

    sources = torch.cat([m_colour[:, None], view.transpose(0, 1)], 1).view(c, -1)  # (c, (t + 1) h w)
    out = sources.gather(1, flat.view(1, -1).expand(c, -1)).view(c, t, h, w).transpose(0, 1)

    # The memory after the last frame, in its coordinates.
    last = torch.maximum(past[t - 1 :], canvas[t:])
    seen = torch.gather(last, -1, at[t:].expand(1, 1, h, w)).to(torch.int32)
    src = seen.clamp(min=0)
    flat_end = (src * h + y) * w + x + offset[t] - offset[src]
    flat_end = torch.where(seen >= 0, flat_end, 0).view(-1)
    remembered = torch.gather(m_age.view(-1), 0, flat_end % (h * w)).view(1, h, w)
    age = torch.where(src == 0, remembered + t, t - src)[0]
    alive = (seen[0] >= 0) & (scene[src[0]] == scene[t]) & (age <= max_age)
    state = (
        sources[:, flat_end].view(c, h, w),
        sources_disparity[flat_end].view(1, h, w),
        torch.where(alive, age, max_age + 1),
        grey[-1],
        known_rows[-1],
        (travel[-1] - placed[-1]).clamp(-0.5, 0.5),
    )
    return out, state, offset[:-1] - offset[1:], cut


class BackgroundMemory:
    """Step 3's memory of one clip across chunks (``fill`` keeps it up to date): the state
    ``fill_chunk`` takes and gives, and the pan shift and cut of every frame that had one before."""

    def __init__(self, max_age: int = MEMORY_FRAMES, max_shift: int = MAX_SHIFT_PX) -> None:
        self.max_age, self.max_shift = max_age, max_shift
        self.state: MemoryState | None = None
        self._shifts: list[torch.Tensor] = []
        self._cuts: list[torch.Tensor] = []

    def state_for(self, view: torch.Tensor) -> MemoryState:
        """The state to fill frames like ``view``'s with (an empty one at the start or after a
        change of size)."""
        if self.state is None or self.state[0].shape != view.shape[1:]:
            self.state = None
            return empty_state(view, self.max_age)
        return self.state

    def update(self, state: MemoryState, shift: torch.Tensor, cut: torch.Tensor) -> None:
        first = 1 if self.state is None else 0  # the clip's first frame had nothing before it
        self.state = state
        self._shifts.append(shift[first:])
        self._cuts.append(cut[first:])

    @property
    def shifts(self) -> list[int]:
        """Every frame's pan (0 at a cut); reads the device (a host sync: diagnostics, tests)."""
        return [int(s) for part in self._shifts for s in part.tolist()]

    @property
    def resets(self) -> int:
        """How many cuts dropped the memory (a host sync)."""
        return sum(int(part.sum()) for part in self._cuts)


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
    ``memory`` what the clip's earlier frames saw fills too (and it keeps these frames for the next
    batch) and, with ``ahead``, what the batch's later frames show; without one the fill is
    spatial only."""
    if memory is None:
        return spatial_fill(view, holes, disparity, tolerance)
    state = memory.state_for(view)
    out, state, shift, cut = fill_chunk(
        view, holes, disparity, state, tolerance=tolerance, max_age=memory.max_age,
        max_shift=memory.max_shift, ahead=ahead,
    )  # fmt: skip
    memory.update(state, shift, cut)
    return out
