"""Stereo layouts: pack a left and a right view into one frame (pure PyTorch).

Modes:
- ``sbs``: full side-by-side, (H, 2W), left eye on the left (the reference's SBS output).
- ``half-sbs``: each eye squeezed to half width, (H, 2 * (W // 2)), for 3D TVs' "half SBS".
- ``top-bottom``: full over/under, (2H, W), left eye on top.
- ``anaglyph``: the reference red-cyan anaglyph: red from the left eye, green and blue from the
  right eye, (H, W).
- ``anaglyph-dubois``: Dubois' least-squares red-cyan anaglyph: the 3x3 matrices are applied to
  linear-light RGB (sRGB decoded), the sum is clipped to [0, 1] and encoded back to sRGB. Less
  retinal rivalry and truer colours than the plain channel split.

All modes convert to uint8 by rounding (x * 255 rounded), not by truncation as the reference does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from stereocrafter.bounds import MODES, Mode

__all__ = ["MODES", "Mode", "compose", "output_size", "to_uint8"]

# Dubois' red-cyan matrices (E. Dubois, "A projection method to generate anaglyph stereo images",
# ICASSP 2001, least-squares fit for red-cyan glasses), rows = output R, G, B.
DUBOIS_LEFT = (
    (0.456, 0.500, 0.176),
    (-0.040, -0.038, -0.016),
    (-0.015, -0.021, -0.005),
)
DUBOIS_RIGHT = (
    (-0.043, -0.088, -0.002),
    (0.378, 0.734, -0.018),
    (-0.072, -0.113, 1.226),
)


def output_size(mode: str, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the composed frame for eyes of ``width`` x ``height``; ``mode`` is one of
    ``MODES``, checked at the edge and by the pipeline's ``check_inputs``, not here."""
    if mode == "sbs":
        return 2 * width, height
    if mode == "half-sbs":
        return 2 * (width // 2), height
    if mode == "top-bottom":
        return width, 2 * height
    return width, height


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-encoded values (IEC 61966-2-1)."""
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp(min=0.0031308) ** (1 / 2.4) - 0.055)


def _dubois(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    mat_l = torch.tensor(DUBOIS_LEFT, dtype=torch.float32, device=left.device)
    mat_r = torch.tensor(DUBOIS_RIGHT, dtype=torch.float32, device=left.device)
    lin_l = srgb_to_linear(left.float())
    lin_r = srgb_to_linear(right.float())
    # (3, 3) x (T, 3, H, W) over the channel axis.
    mixed = torch.einsum("oc,tchw->tohw", mat_l, lin_l) + torch.einsum("oc,tchw->tohw", mat_r, lin_r)
    return linear_to_srgb(mixed.clamp(0.0, 1.0))


def _half_width(x: torch.Tensor) -> torch.Tensor:
    """Squeeze to half width by box averaging (exactly pairs of columns for even widths)."""
    h, w = x.shape[-2:]
    return F.interpolate(x.float(), size=(h, w // 2), mode="area")


def compose(left: torch.Tensor, right: torch.Tensor, mode: str) -> torch.Tensor:
    """Pack two views into one stereo frame per time step.

    Args:
        left, right: (T, 3, H, W) float in [0, 1] (values outside are clipped), same shape/device.
        mode: one of ``MODES`` (checked at the edge and by the pipeline's ``check_inputs``, not
            per chunk here).

    Returns:
        (T, H_out, W_out, 3) uint8, channels last (ready for the video writer), on the input's
        device; (W_out, H_out) = ``output_size(mode, W, H)``.
    """
    if left.ndim != 4 or left.shape[1] != 3:
        raise ValueError(f"left must be (T, 3, H, W), got shape {tuple(left.shape)}")
    if right.shape != left.shape:
        raise ValueError(f"right must match left {tuple(left.shape)}, got {tuple(right.shape)}")

    if mode == "sbs":  # each view straight into its half of the channels-last frame: no float copy
        frames, _, height, width = left.shape
        out = torch.empty(frames, height, 2 * width, 3, dtype=torch.uint8, device=left.device)
        out[:, :, :width] = to_uint8(left).permute(0, 2, 3, 1)
        out[:, :, width:] = to_uint8(right).permute(0, 2, 3, 1)
        return out
    if mode == "half-sbs":
        packed = torch.cat((_half_width(left), _half_width(right)), dim=3)
    elif mode == "top-bottom":
        packed = torch.cat((left, right), dim=2)
    elif mode == "anaglyph":
        packed = torch.cat((left[:, :1], right[:, 1:]), dim=1)
    elif mode == "anaglyph-dubois":
        packed = _dubois(left, right)
    else:  # not a layout: the callers' check_mode let it through
        raise AssertionError(f"compose got the unchecked mode {mode!r}")
    return to_uint8(packed).permute(0, 2, 3, 1).contiguous()


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 by rounding to the nearest level (values outside are clipped)."""
    scaled = x.float().clamp(0.0, 1.0)  # a new tensor: the in-place steps below leave ``x`` alone
    return scaled.mul_(255.0).round_().to(torch.uint8)
