"""Depth -> disparity -> forward splatting of the left view into a right view (pure PyTorch).

This reproduces StereoCrafter's stage-1 warp (``ForwardWarpStereo`` over the Forward-Warp CUDA
kernel) without a compiled extension, on CPU and CUDA alike:

- disparity in pixels = (2 * depth - 1) * max_disp, depth 1 = near;
- every left pixel moves by flow = (-disparity, 0): near content moves left in the right view;
- each moved pixel is splatted bilinearly into the 4 integer pixels around its target;
- a soft z-buffer weights each splat by 1.414 ** (disparity - min(disparity)), so nearer pixels win
  where several land on the same target, and the right view is the weighted average of what landed;
- occlusion = 1 - clamp(coverage, 0, 1), where coverage is the splat of ones (1 = hole).

Deliberate deviation from the reference kernel (a defect, see the reference notes, Forward-Warp):
the kernel drops a source pixel unless *all four* corners x0, x0 + 1, y0, y0 + 1 lie inside the
image, even when a corner's bilinear weight is exactly zero. With the purely horizontal flow of
stereo, y is always an integer, so row y0 + 1 carries weight 0 and, for the last row, lies outside:
the reference drops every pixel of the last row and the right view's bottom row is always a hole.
The same rule drops a pixel landing exactly on the last column. Here a corner with zero weight is
neither required to be inside nor written; everything else (the drop of a pixel whose weighted
corners leave the image, the weights, the normalisation, eps) is the reference's arithmetic.
"""

from __future__ import annotations

import math

import torch

# Base of the soft z-buffer. The reference uses 1.414 (about sqrt(2)) rather than e so that
# 1.414 ** 40 (the full +-20 px range) stays far from float overflow.
Z_BUFFER_BASE = 1.414


def disparity_from_depth(
    depth: torch.Tensor, max_disp: float = 20.0, *, in_range: bool = False
) -> torch.Tensor:
    """Map normalised depth to signed disparity in pixels.

    Args:
        depth: (T, 1, H, W) float in [0, 1], 1 = near (DepthCrafter's normalised output).
        max_disp: disparity of the nearest point in pixels of the frames being warped (>= 0).
            Far points (depth 0) get -max_disp, depth 0.5 is the zero-parallax plane.
        in_range: the caller has clamped ``depth`` to [0, 1]: its range is not checked (the check
            reads two values back from the device).

    Returns:
        disparity (T, 1, H, W), same dtype, in pixels; positive = in front of the screen.
    """
    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be (T, 1, H, W), got shape {tuple(depth.shape)}")
    if not depth.is_floating_point():
        raise ValueError(f"depth must be a floating point tensor, got dtype {depth.dtype}")
    if not (max_disp >= 0.0 and max_disp < float("inf")):
        raise ValueError(f"max_disp must be a finite number >= 0, got {max_disp}")
    if depth.numel() > 0 and not in_range:
        low, high = float(depth.min()), float(depth.max())
        if not (low >= 0.0 and high <= 1.0):
            raise ValueError(f"depth must lie in [0, 1], got values in [{low}, {high}]")
    return (2.0 * depth - 1.0) * max_disp


def bilinear_splat(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Forward-splat ``values`` along ``flow`` with bilinear weights (sum of contributions).

    Source pixel (x, y) lands at (x + fx, y + fy) and adds ``value * w`` to each of the 4 integer
    pixels around it, w being the usual bilinear weights. A source pixel is dropped entirely when a
    corner with non-zero weight falls outside the image (the reference's border rule, see the
    module docstring for the zero-weight fix). Nothing is normalised here.

    Args:
        values: (T, C, H, W) floating point; accumulated in this dtype (pass float32 or float64).
        flow: (T, H, W, 2) in pixels, channel 0 = x (width), channel 1 = y (height).

    Returns:
        (T, C, H, W) splatted sums, same dtype and device as ``values``.
    """
    t, _c, h, w = values.shape
    if flow.shape != (t, h, w, 2):
        raise ValueError(f"flow must be (T, H, W, 2) = {(t, h, w, 2)}, got {tuple(flow.shape)}")
    flow = flow.to(values.dtype)
    xs = torch.arange(w, device=values.device, dtype=values.dtype) + flow[..., 0]
    ys = torch.arange(h, device=values.device, dtype=values.dtype).view(h, 1) + flow[..., 1]
    out = _splat_channels_last(values.permute(0, 2, 3, 1), xs, ys)
    return out.permute(0, 3, 1, 2).contiguous()


def _weighted_corners_inside(pos: torch.Tensor, frac: torch.Tensor, size: int) -> torch.Tensor:
    """Whether the corners with weight of a splat at ``pos`` (floor + ``frac``) lie in [0, size).

    The corners are floor(pos), weight 1 - frac, and floor(pos) + 1, weight frac. Written as the
    rule "each corner is inside or weighs nothing", that is 11 full-plane ops; this is the same
    rule in 5. The high side: with frac = 0, pos is the one corner; otherwise floor(pos) + 1 <=
    size - 1 iff pos < size - 1; both read pos <= size - 1. The low side: pos >= 0 means
    floor(pos) >= 0; otherwise the corner floor(pos) weighs nothing only when frac rounded up to 1,
    which happens for pos in (-2**-24, 0) alone (for |pos| >= 1, pos - floor(pos) is exact), where
    the other corner is 0, inside."""
    return (pos <= size - 1) & ((pos >= 0) | (frac == 1))


def _splat_channels_last(src: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor | None) -> torch.Tensor:
    """The splat itself on channels-last data.

    Args:
        src: (T, H, W, C) values, in the accumulation dtype.
        xs, ys: (T, H, W) target positions in pixels (source position + flow); ``ys`` None means
            every pixel stays on its row (stereo: purely horizontal flow).

    Returns:
        (T, H, W, C) sums.
    """
    t, h, w, c = src.shape
    n = t * h * w
    dtype, device = src.dtype, src.device

    x0f = torch.floor(xs)
    ax = xs - x0f  # fractional part in [0, 1]
    index_dtype = torch.int32 if n + 2 * w + 4 < 2**31 else torch.int64  # half the bytes where it fits
    x0 = x0f.to(index_dtype)
    # Separable border rule: every x corner with weight must lie in [0, W), and likewise in y.
    keep = _weighted_corners_inside(xs, ax, w)
    # The sums lie in rows [front, front + n) of ``out`` (below): row y of frame f starts at
    # front + (f H + y) W. The spare rows around them take what is discarded, so no index needs a
    # clamp: a dropped pixel (sent to row front + n) and its corners up to 1 + W further, and a
    # kept pixel's zero-weight corner off the image (before its first pixel by up to 1 + W, or
    # after its last), which elsewhere adds an exact 0 to a neighbour.
    front = 1 + (w if ys is not None else 0)
    row = (
        torch.arange(t, device=device, dtype=index_dtype).view(t, 1, 1) * h
        + torch.arange(h, device=device, dtype=index_dtype).view(1, h, 1)
    ) * w + front

    if ys is None:
        y_corners: list[tuple[int, torch.Tensor | None]] = [(0, None)]  # weight 1 on row y
        base = row + x0
    else:
        y0f = torch.floor(ys)
        ay = ys - y0f
        y0 = y0f.to(index_dtype)
        keep &= _weighted_corners_inside(ys, ay, h)
        # row already holds y * W (+ front); move it to y0 * W.
        base = row + (y0 - torch.arange(h, device=device, dtype=index_dtype).view(1, h, 1)) * w + x0
        y_corners = [(0, 1 - ay), (w, ay)]
        if not bool(ay.any()):
            y_corners = [(0, None)]  # every y is an integer: the y0 + 1 corners weigh nothing

    out = torch.zeros((front + n + 1 + front, c), dtype=dtype, device=device)
    base = torch.where(keep, base, front + n).reshape(-1)
    rows = src.reshape(n, c)
    for x_offset, x_weight in ((0, 1 - ax), (1, ax)):
        for y_offset, y_weight in y_corners:
            weight = x_weight if y_weight is None else x_weight * y_weight
            # the corner at base + offset: the same indices into the sums moved by the offset
            _accumulate(out[x_offset + y_offset :], base, rows * weight.reshape(n, 1))
    return out[front : front + n].view(t, h, w, c)


def _accumulate(out: torch.Tensor, index: torch.Tensor, values: torch.Tensor) -> None:
    """``out[index[i]] += values[i]`` for every i, in an order that does not change from run to run.

    Where several source pixels land on one target, float addition's order shows in the last bit.
    On CUDA, ``index_add_`` adds with atomics in whatever order the threads arrive (PyTorch lists
    it as nondeterministic), so the same frames could splat to views a bit apart and, through the
    inpainting, to different films; ``index_put_`` with ``accumulate`` sorts the indices first and
    sums each target's contributions in that order, on CUDA always (not only under
    ``torch.use_deterministic_algorithms``). On the CPU ``index_add_`` adds in index order."""
    if out.device.type == "cuda":
        out.index_put_((index,), values, accumulate=True)
    else:
        out.index_add_(0, index, values)


def forward_splat(
    frames: torch.Tensor, disparity: torch.Tensor, eps: float = 1e-6, *, carry_disparity: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp the left view into the right view by forward splatting (reference ForwardWarpStereo).

    Args:
        frames: (T, 3, H, W) float in [0, 1], the left view (any channel count works).
        disparity: (T, 1, H, W) in pixels (see ``disparity_from_depth``); positive = near.
        eps: lower clamp of the splatted weight sum before normalising (reference: 1e-6).
        carry_disparity: splat the disparity too, as one more channel of ``frames`` (the right
            view's own disparity, with the same weights), without a copy of the two joined.

    Returns:
        right: (T, 3, H, W), the splatted right view, 0 (black) in holes, in [0, 1] for ``frames``
            in [0, 1] with no clamp needed: every colour product rounds to at most the weight's
            product it is added beside, in the same order, so the sum does too (with
            ``carry_disparity``, (T, 4, H, W): its last channel the splatted disparity).
        occlusion: (T, 1, H, W) in [0, 1], 1 = hole, fractional where partially covered.
        Both in the dtype of ``frames``; the accumulation runs in float32 (float64 for float64
        input) because the z-buffer weights reach 1.414 ** 40 ~ 1e6, beyond float16's range.

    The z-buffer minimum is taken over the whole ``disparity`` tensor, as the reference does for
    its batch; the choice cancels out of the result except through ``eps``.
    """
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, C, H, W), got shape {tuple(frames.shape)}")
    t, _, h, w = frames.shape
    if disparity.shape != (t, 1, h, w):
        raise ValueError(f"disparity must be (T, 1, H, W) = {(t, 1, h, w)}, got {tuple(disparity.shape)}")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be floating point in [0, 1], got dtype {frames.dtype}")
    if t == 0:
        raise ValueError("frames must hold at least one frame")

    acc_dtype = torch.float64 if frames.dtype == torch.float64 else torch.float32
    disp = disparity[:, 0].to(acc_dtype)  # (T, H, W)
    # One read for the check and the z-buffer's minimum: min and max are NaN when any value is,
    # and +-Inf when one is, and then so is their difference (one value to read back).
    low, high = torch.aminmax(disp)
    if not math.isfinite(float(high - low)):
        raise ValueError("disparity contains NaN or Inf")
    weights = torch.pow(Z_BUFFER_BASE, disp - low)  # (T, H, W)

    # One pass splats the weighted colours, the weights and the ones: the reference runs three
    # kernels with the same flow, which is the same arithmetic channel by channel.
    c = frames.shape[1]
    carried = c + 1 if carry_disparity else c
    src = torch.empty((t, h, w, carried + 2), dtype=acc_dtype, device=frames.device)
    torch.mul(frames.permute(0, 2, 3, 1), weights.unsqueeze(-1), out=src[..., :c])
    if carry_disparity:
        torch.mul(disp, weights, out=src[..., c])
    src[..., carried] = weights
    src[..., carried + 1] = 1.0
    # flow = (-disparity, 0); x - d is bit for bit x + (-d), without the negated plane
    xs = torch.arange(w, device=frames.device, dtype=acc_dtype) - disp
    splat = _splat_channels_last(src, xs, None).permute(0, 3, 1, 2)

    # Normalised straight into (T, C, H, W) (no copy of the channels-last sums).
    right = torch.empty((t, carried, h, w), dtype=acc_dtype, device=frames.device)
    torch.div(splat[:, :carried], splat[:, carried : carried + 1].clamp(min=eps), out=right)
    occlusion = torch.sub(1.0, splat[:, carried + 1 :].clamp(0.0, 1.0)).contiguous()
    return right.to(frames.dtype), occlusion.to(frames.dtype)
