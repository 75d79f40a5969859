"""Merging a low-resolution inpaint into the full-resolution splat (the ``fast`` preset): pure torch.

The inpainting stage fills the holes of the warped right view; outside the holes the splat already
holds the source pixel moved to its right-eye place. ``hole_weights`` turns the occlusion map
into a blending weight: 1 on every hole pixel (occlusion >= 0.5, the model's own binarisation)
and within ``dilate_px`` of one (Chebyshev distance), then falling linearly to 0 over
``feather_px`` more pixels, exactly 0 beyond. ``merge_right_view`` takes the inpainted pixel
where the weight is 1, the splatted one where it is 0 (bit for bit), a mix in between.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def hole_weights(occlusion: torch.Tensor, dilate_px: int, feather_px: int) -> torch.Tensor:
    """occlusion (T, 1, H, W) in [0, 1] (1 = hole) -> weight (T, 1, H, W) float32 in [0, 1]."""
    if dilate_px < 0 or feather_px < 0:
        raise ValueError(f"dilate_px and feather_px must be >= 0, got {dilate_px} and {feather_px}")
    grown = (occlusion >= 0.5).float()
    if dilate_px:
        grown = _square_max(grown, dilate_px)
    weight = grown
    for step in range(1, feather_px + 1):
        # one more pixel of growth per step; each ring gets a lower weight
        grown = _square_max(grown, 1)
        weight = torch.maximum(weight, grown * (1.0 - step / (feather_px + 1)))
    return weight


def _square_max(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The max over each pixel's (2 radius + 1)² square (outside the frame: nothing), as a column
    pass then a row pass: the same values as one square ``max_pool2d``, with 2 (2r + 1) instead
    of (2r + 1)² comparisons per pixel (9x9: 18 instead of 81)."""
    size = 2 * radius + 1
    x = F.max_pool2d(x, (size, 1), stride=1, padding=(radius, 0))
    return F.max_pool2d(x, (1, size), stride=1, padding=(0, radius))


def merge_right_view(warped: torch.Tensor, inpainted: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """warped, inpainted (T, 3, H, W) in [0, 1], weight (T, 1, H, W) -> the merged right view.
    Where ``weight`` is 0 the result IS ``warped`` (no arithmetic touches those pixels)."""
    if inpainted.shape != warped.shape:
        raise ValueError(f"inpainted {tuple(inpainted.shape)} must match warped {tuple(warped.shape)}")
    mixed = warped + (inpainted.to(warped.dtype) - warped) * weight
    return torch.where(weight > 0, mixed, warped)


LATENT_CELL = 8  # pixels per latent of the SVD VAE


def working_size(height: int, width: int, max_res: int, multiple: int = 8) -> tuple[int, int]:
    """The inpainting working size: the source size when ``max_res`` is 0 or not exceeded, else a
    smaller size whose sides are multiples of ``multiple``: the largest long side (at most
    ``max_res``) whose short side, rounded to a multiple, is within half a latent cell (4 px) of
    the source's aspect ratio; when none is, the one that keeps the ratio best.

    Multiples of 8 (``fast``): rounding is always within 4 px, so the long side is ``max_res``:
    1920x1080 -> 1024x576, 1280x720 -> 1024x576, 3840x1600 -> 1024x424. Multiples of 64
    (``turbo``, 512): 1920x1080 -> 448x256 (252 rounds to 256; 512 would need 288, which rounds
    to 256 or 320, 32 px off), 640x480 -> 512x384, 2560x1080 -> 448x192."""
    if max_res <= 0 or max(height, width) <= max_res:
        return height, width
    ratio = max(height, width) / min(height, width)
    best: tuple[float, int, int] | None = None
    for long in range(max_res // multiple * multiple, 0, -multiple):
        exact = long / ratio
        short = max(multiple, round(exact / multiple) * multiple)
        if abs(short - exact) <= LATENT_CELL / 2:
            best = (0.0, long, short)
            break
        error = abs(math.log(long / short / ratio))
        if best is None or error < best[0]:
            best = (error, long, short)
    assert best is not None
    _, long, short = best
    return (long, short) if height >= width else (short, long)


def shrink(
    warped: torch.Tensor, occlusion: torch.Tensor, size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The inpainting input at the working size: the view resampled with antialiasing, the holes
    kept conservatively (a working pixel is a hole if any source pixel under it is one)."""
    if tuple(warped.shape[-2:]) == tuple(size):
        return warped, occlusion
    small = F.interpolate(warped, size=size, mode="bilinear", antialias=True, align_corners=False)
    holes = F.interpolate((occlusion >= 0.5).float(), size=size, mode="area")
    return small.clamp(0, 1), (holes > 0).float()


def enlarge(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The inpainted view back at the source size (bicubic), clamped to [0, 1]."""
    if tuple(frames.shape[-2:]) == tuple(size):
        return frames
    return F.interpolate(frames.float(), size=size, mode="bicubic", align_corners=False).clamp(0, 1)
