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
3. **What was seen before and after**: the last colour and disparity observed at every right-view
   pixel, with its age. A hole pixel whose remembered pixel was background there (its disparity at
   most the hidden content's plus the tolerance) and at most ``MEMORY_FRAMES`` frames old takes the
   remembered colour: the exact background when a foreground moves over a still background. The
   later frames of the chunk are looked at the same way; a pixel seen both before and after takes
   the more recent sighting (the earlier one when as old). A horizontal pan between consecutive
   frames (at most ``MAX_SHIFT_PX`` per frame) is followed (``stereo.pan``); when none matches (a
   cut, a fast or complex move) nothing from before that frame is used.

How it runs (``fill_chunk``): a chunk's frames at once, on the device. Full-frame work is only what
every pixel needs: every frame's "seen" stamp on a canvas in the pan's world coordinates with a
running maximum over the frames (its latest sighting; a running minimum: its next), one op a
frame, and the pan search on every k-th row. Everything else runs on the list of hole pixels
(one ``nonzero`` per chunk: the host learns how many; ``stereo.holes``): each run's two sides,
which side, the mirror, which sighting, and one gather of their colours. The rare column steps run on
full frames only when a chunk has such a pixel (compiled: always, so that the graph has no branch).
"""

from __future__ import annotations

import torch

from stereocrafter.stereo.holes import (
    HolePixels,
    hole_pixels,
    latest_seen,
    nearest_known,
    next_seen,
    run_sides,
)
from stereocrafter.stereo.pan import anchor, pan_rows, pan_shifts

DISPARITY_TOLERANCE_PX = 1.0  # a source within this of the background boundary's disparity is background
MEMORY_FRAMES = 48  # how old a remembered background pixel may be (2 s at 24 fps)
MAX_SHIFT_PX = 8  # the largest per-frame pan the memory follows


def hole_sides(
    holes: torch.Tensor, disparity: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Whole planes: holes (t, 1, h, w) bool (True = hole), disparity (t, 1, h, w) in pixels (larger
    = nearer) -> per pixel: the nearest known pixel to its left (-1: none) and to its right (w:
    none) in its row (int32), their disparities, and the disparity the hole's content has.

    Between two known pixels, a right view's hole opens on the right of the surface that hid it
    (nearer content moves left more): its width is that surface's disparity minus the hidden
    content's. A hole that touches the border has one side: its content continues that side."""
    left, right = nearest_known(~holes, dtype=torch.int32)
    w = holes.shape[-1]
    d_left = torch.gather(disparity, -1, left.clamp(0, w - 1))
    d_right = torch.gather(disparity, -1, right.clamp(0, w - 1))
    return left, right, d_left, d_right, _content(left, right, d_left, d_right, w)


def _content(left: torch.Tensor, right: torch.Tensor, d_left: torch.Tensor, d_right: torch.Tensor,
             w: int) -> torch.Tensor:  # fmt: skip
    has_left = left >= 0
    between = d_left - (right - left - 1).to(d_left.dtype)
    return torch.where(has_left & (right < w), between, torch.where(has_left, d_left, d_right))


def spatial_source(
    holes: torch.Tensor, disparity: torch.Tensor, at: HolePixels, tolerance: float = DISPARITY_TOLERANCE_PX
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1 and 2 of the module docstring for the hole pixels ``at``: -> the row and column of
    the frame's pixel each takes, and the disparity of what it hides (vectors)."""
    w = holes.shape[-1]
    lo, hi = run_sides(at)
    d = disparity.reshape(-1)
    d_left, d_right = d[at.row + lo.clamp(0, w - 1)], d[at.row + hi.clamp(0, w - 1)]
    content = _content(lo, hi, d_left, d_right, w)
    has_left, has_right = lo >= 0, hi < w
    match_right = has_right & ((d_right - content).abs() <= tolerance)
    match_left = has_left & ((d_left - content).abs() <= tolerance)
    take_right = match_right & (~match_left | (d_right <= d_left))
    sided = take_right | match_left  # the hidden content's surface is one of the row's sides
    # Neither side is (both are nearer surfaces): the farther side for now, replaced by the
    # column's background where there is one.
    farther_right = has_right & (~has_left | (d_right <= d_left))
    boundary = torch.where(take_right | (~sided & farther_right), hi, lo).clamp(0, w - 1)
    mirrored = 2 * boundary - at.x
    source = mirrored.clamp(0, w - 1)
    good = (mirrored == source) & ~holes.reshape(-1)[at.row + source]
    good &= (d[at.row + source] - d[at.row + boundary]).abs() <= tolerance
    col = torch.where(good, source, boundary)
    unresolved, orphans = ~sided, ~has_left & ~has_right
    if torch.compiler.is_compiling() or bool((unresolved | orphans).any()):
        return (*_columns(holes, disparity, at, content, col, unresolved, orphans, tolerance), content)
    return at.y, col, content


def _columns(
    holes: torch.Tensor, disparity: torch.Tensor, at: HolePixels, content: torch.Tensor, col: torch.Tensor,
    unresolved: torch.Tensor, orphans: torch.Tensor, tolerance: float,
) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """The rare steps, on whole planes: a hole between two nearer surfaces takes the nearest pixel
    of its column, above or below, that is resolved and whose surface is the hidden content's (the
    nearer when both are); then a row without a known pixel takes its column's nearest pixel that
    has one, above, else below (what that pixel took)."""
    t, _, h, w = holes.shape
    base = at.p - at.y * w  # the column's first pixel

    def plane(values: torch.Tensor | None, fill: torch.Tensor) -> torch.Tensor:
        out = fill.expand(t, 1, h, w).clone()
        if values is not None:
            out.reshape(-1)[at.p] = values.to(out.dtype)
        return out

    def marked(which: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(holes)
        out.reshape(-1)[at.p] = which
        return out

    xs = torch.arange(w, dtype=torch.int32, device=holes.device).view(1, 1, 1, w)
    surface = plane(content, disparity).reshape(-1)
    above, below = nearest_known(~marked(unresolved), -2)
    up, down = above.reshape(-1)[at.p].long(), below.reshape(-1)[at.p].long()
    ok_up = unresolved & (up >= 0) & ((surface[base + up.clamp(0, h - 1) * w] - content).abs() <= tolerance)
    ok_down = (
        unresolved & (down < h) & ((surface[base + down.clamp(0, h - 1) * w] - content).abs() <= tolerance)
    )
    pick = torch.where(ok_down & (~ok_up | (down - at.y < at.y - up)), down, up).clamp(0, h - 1)
    take = ok_up | ok_down
    cols = plane(col, xs).reshape(-1)
    col = torch.where(take, cols[base + pick * w].long(), col)
    row = torch.where(take, pick, at.y)
    above, below = nearest_known(~marked(orphans), -2)
    up, down = above.reshape(-1)[at.p].long(), below.reshape(-1)[at.p].long()
    pick = torch.where(up >= 0, up, down).clamp(0, h - 1)
    rows = plane(row, torch.arange(h, device=holes.device).view(1, 1, h, 1)).reshape(-1)
    cols = plane(col, xs).reshape(-1)
    return torch.where(orphans, rows[base + pick * w], row), torch.where(orphans, cols[base + pick * w], col)


def _colours(
    view: torch.Tensor,
    at: HolePixels,
    frame: torch.Tensor,
    pixel: torch.Tensor,
    before: torch.Tensor | None = None,
) -> torch.Tensor:
    """The view with each hole pixel ``at`` replaced by pixel ``pixel`` (y w + x) of frame
    ``frame``; with ``before`` (c, h, w), frames count from 1 and frame 0 is ``before``."""
    t, c, h, w = view.shape
    out = view.clone(memory_format=torch.contiguous_format)
    if before is None:
        colour = view.reshape(t, c, h * w)[frame, :, pixel]
    else:
        colour = torch.where((frame == 0)[:, None], before.reshape(c, h * w)[:, pixel].T,
                             view.reshape(t, c, h * w)[(frame - 1).clamp(min=0), :, pixel])  # fmt: skip
    out.view(t, c, h * w)[at.f, :, at.y * w + at.x] = colour
    return out


def spatial_fill(
    view: torch.Tensor,
    holes: torch.Tensor,
    disparity: torch.Tensor,
    tolerance: float = DISPARITY_TOLERANCE_PX,
) -> torch.Tensor:
    """Steps 1 and 2 on a batch: view (t, c, h, w), holes (t, 1, h, w) bool, disparity
    (t, 1, h, w) -> the view with every hole pixel filled."""
    at = hole_pixels(holes)
    row, col, _ = spatial_source(holes, disparity, at, tolerance)
    return _colours(view, at, at.f, row * view.shape[-1] + col)


MemoryState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def empty_state(view: torch.Tensor, max_age: int = MEMORY_FRAMES) -> MemoryState:
    """A memory that has seen nothing, for frames like view's (t, 3, h, w): colour (3, h, w),
    disparity (1, h, w), age (1, h, w) int32 (``max_age + 1``: never), the grey rows and known
    mask of the frame before (none), and where that frame lies between whole pixels of the pan
    (a 0-d float in [-0.5, 0.5])."""
    grey, known = pan_rows(view[:1], torch.ones_like(view[:1, :1], dtype=torch.bool))
    return (torch.zeros_like(view[0]), torch.zeros_like(view[0, :1]),
            torch.full_like(view[0, :1], max_age + 1, dtype=torch.int32), torch.zeros_like(grey[0]), known[0],
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
    each frame's pan in whole pixels (int32) and cut (``stereo.pan``)."""
    t, _, h, w = view.shape
    device = view.device
    m_colour, m_disparity, m_age, m_grey, m_known, m_phase = state
    at = hole_pixels(holes)
    row, col, content = spatial_source(holes, disparity, at, tolerance)

    grey, known_rows = pan_rows(view, holes)
    shift, cut = pan_shifts(grey, known_rows, (m_grey, m_known), max_shift)
    # World x of a frame's pixel x: x + offset; id 0 is the memory (the frame before the chunk), id
    # f + 1 is frame f. The pan adds up in fractions of a pixel, each frame placed at the whole pixel
    # nearest, and checked against the reference frame of its scene two pixels either side. A cut
    # starts a new scene: only the same scene's ids are used.
    zero = torch.zeros(1, dtype=torch.int32, device=device)
    travel = m_phase - shift.cumsum(0)
    placed = torch.round(travel).to(torch.int32)
    scene = torch.cat([zero, cut.cumsum(0, dtype=torch.int32)])
    has_before = m_known.any()
    reference = (torch.where(has_before, m_grey, grey[0]), torch.where(has_before, m_known, known_rows[0]))
    same = scene[1:] == torch.where(has_before, 0, scene[1])
    offset = torch.cat(
        [zero, placed + torch.where(same, anchor(grey, known_rows, reference, placed), 0)]
    ).long()
    pad = max_shift * t + 2
    width = w + 2 * pad
    ids = torch.arange(t + 1, dtype=torch.int16, device=device).view(t + 1, 1, 1, 1)
    stamp = torch.where(torch.cat([(m_age <= max_age)[None], ~holes]), ids, -1)
    local = torch.arange(width, device=device).view(1, 1, 1, -1) - pad - offset.view(t + 1, 1, 1, 1)
    canvas = torch.gather(stamp, -1, local.clamp(0, w - 1).expand(t + 1, 1, h, -1))
    canvas = torch.where((local >= 0) & (local < w), canvas, -1)

    me = at.f + 1
    where_on_canvas = (at.f * h + at.y) * width + at.x + pad + offset[me]
    sources_disparity = (m_disparity.reshape(-1), disparity.reshape(t, h * w))

    def sighting(found: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """found: the id that saw each hole pixel (< 0 or > t: none) -> that id, its pixel (y w + x),
        whether it may fill the hole pixel, and how old it is."""
        src = found.clamp(0, t)
        pixel = (at.y * w + at.x + offset[me] - offset[src]).clamp(0, h * w - 1)
        remembered = m_age.reshape(-1)[pixel]
        age = torch.where(src == 0, remembered + me, (me - src).abs())
        seen = torch.where(
            src == 0, sources_disparity[0][pixel], sources_disparity[1][(src - 1).clamp(min=0), pixel]
        )
        usable = (found >= 0) & (found <= t) & (scene[src] == scene[me]) & (age <= max_age)
        return src, pixel, usable & (seen <= content + tolerance), age

    past = latest_seen(canvas, t)
    src, pixel, use, age = sighting(past.reshape(-1)[where_on_canvas].long())
    frame, pixel = torch.where(use, src, me), torch.where(use, pixel, row * w + col)
    if ahead and t > 1:
        later = next_seen(canvas, t)
        found = later.reshape(-1)[where_on_canvas.clamp(max=later.numel() - 1)].long()
        next_src, next_pixel, next_use, next_age = sighting(torch.where(at.f < t - 1, found, t + 1))
        next_use &= ~use | (next_age < age)
        frame, pixel = torch.where(next_use, next_src, frame), torch.where(next_use, next_pixel, pixel)

    out = _colours(view, at, frame, pixel, m_colour)
    tail = (grey[-1], known_rows[-1], (travel[-1] - placed[-1]).clamp(-0.5, 0.5))
    after = _after(canvas, past, offset, scene, state, view, disparity, max_age, tail)
    return out, after, offset[:-1] - offset[1:], cut


def _after(
    canvas: torch.Tensor, past: torch.Tensor, offset: torch.Tensor, scene: torch.Tensor, state: MemoryState,
    view: torch.Tensor, disparity: torch.Tensor, max_age: int, tail: tuple[torch.Tensor, ...],
) -> MemoryState:  # fmt: skip
    """The memory after the chunk's last frame, in its coordinates (one frame of whole planes);
    ``tail``: that frame's grey rows, known rows and phase (``empty_state``)."""
    t, c, h, w = view.shape
    m_colour, m_disparity, m_age = state[:3]
    pad = (canvas.shape[-1] - w) // 2
    last = torch.maximum(past[t - 1], canvas[t])  # (1, h, width)
    at = torch.arange(w, device=view.device).view(1, 1, w) + pad + offset[t]
    seen = torch.gather(last, -1, at.expand(1, h, w)).long()
    src = seen.clamp(0, t)
    pixel = torch.arange(h * w, device=view.device).view(1, h, w) + offset[t] - offset[src]
    pixel = torch.where(seen >= 0, pixel, 0).clamp(0, h * w - 1)
    age = torch.where(src == 0, m_age.reshape(-1)[pixel] + t, t - src)
    alive = (seen >= 0) & (scene[src] == scene[t]) & (age <= max_age)
    frame, where = (src[0] - 1).clamp(min=0), pixel[0]
    colour = torch.where(src[0] == 0, m_colour.reshape(c, h * w)[:, where],
                         view.reshape(t, c, h * w)[frame, :, where].permute(2, 0, 1))  # fmt: skip
    seen_disparity = torch.where(
        src == 0, m_disparity.reshape(-1)[pixel], disparity.reshape(t, h * w)[frame, where]
    )
    return (colour, seen_disparity, torch.where(alive, age, max_age + 1).int(), *tail)  # type: ignore[return-value]


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
    out, state, shift, cut = fill_chunk(
        view, holes, disparity, memory.state_for(view), tolerance=tolerance, max_age=memory.max_age,
        max_shift=memory.max_shift, ahead=ahead,
    )  # fmt: skip
    memory.update(state, shift, cut)
    return out
