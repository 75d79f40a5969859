"""The horizontal pan between consecutive frames of a chunk, found on the device for the fill's
memory (``stereo.fill``): every k-th row of each frame's known pixels against the frame before it,
all shifts of at most ``max_shift`` px at once; refined to a fraction of a pixel (so that a slow pan
adds up) and anchored to a reference frame (so that a bias does not). No value goes to the host."""

from __future__ import annotations

import torch
import torch.nn.functional as F

MATCH_TOLERANCE = 0.06  # mean absolute colour difference in [0, 1] above which the memory is dropped
MIN_OVERLAP = 0.05  # a shift is judged on at least this share of the compared pixels
PAN_ROWS = 16  # the pan search compares every k-th row, k = max(1, height // PAN_ROWS)


def pan_shifts(
    grey: torch.Tensor, known: torch.Tensor, before: tuple[torch.Tensor, torch.Tensor], max_shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The horizontal pan from each frame to the next, all frames and shifts at once: grey (t, r, w)
    and known (t, r, w) bool of the chunk's frames (every k-th row), ``before`` the same of the
    frame before the chunk -> per frame the shift s in pixels (content moved s px to the right,
    float: the best integer shift refined by the parabola through its neighbours' errors, so that a
    slow pan adds up) and whether no shift matches (a cut: bool). Ties go to the smaller |s|, then
    to the leftward."""
    _, r, w = grey.shape
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
    grey: torch.Tensor,
    known: torch.Tensor,
    reference: tuple[torch.Tensor, torch.Tensor],
    placed: torch.Tensor,
) -> torch.Tensor:
    """grey, known (t, r, w) of the chunk's frames, ``reference`` (r, w) grey and known of the frame
    their offsets count from, ``placed`` (t,) each frame's offset from it (its pixel x is the
    reference's x + placed) -> the correction in -2 .. 2 that matches each frame to the reference
    best (0 when none matches within ``MATCH_TOLERANCE``; ties to the smaller, then the leftward)."""
    t, r, w = grey.shape
    errors = []
    corrections = (0, -1, 1, -2, 2)
    for d in corrections:
        at = torch.arange(w, device=grey.device).view(1, 1, w) + (placed + d).view(t, 1, 1)
        inside = (at >= 0) & (at < w)
        at = at.clamp(0, w - 1).expand(t, r, w)
        both = inside & known & torch.gather(reference[1].expand(t, r, w), -1, at)
        error = torch.where(both, (torch.gather(reference[0].expand(t, r, w), -1, at) - grey).abs(), 0.0)
        count = both.sum((1, 2))
        errors.append(
            torch.where(count >= MIN_OVERLAP * r * w, error.sum((1, 2)) / count.clamp(min=1), torch.inf)
        )
    scores = torch.stack(errors, 1)
    best = scores.argmin(1)
    ok = scores.gather(1, best[:, None])[:, 0] <= MATCH_TOLERANCE
    return torch.where(ok, torch.tensor(corrections, dtype=torch.int32, device=grey.device)[best], 0)


def pan_rows(view: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The pan search's view of frames (t, c, h, w): every k-th row of each colour channel, the
    channels stacked as rows, and whether each such pixel is known: (t, c r, w) each. Compared per
    channel, a difference is the mean absolute difference over the channels (a grey average would
    let two shots of one mean brightness match)."""
    t, c, h, w = view.shape
    step = max(1, h // PAN_ROWS)
    rows = view[:, :, ::step].reshape(t, -1, w)
    known = (~holes[:, 0, ::step]).unsqueeze(1).expand(t, c, -1, w).reshape(t, -1, w)
    return rows, known
