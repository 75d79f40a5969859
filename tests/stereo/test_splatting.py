"""forward_splat against analytic geometry and against a literal port of the reference kernel."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stereocrafter.stereo.splatting import bilinear_splat, disparity_from_depth, forward_splat
from stereocrafter.testing.planes import default_planes, render

# --- a literal, loop-by-loop port of the reference (Forward-Warp's Python fallback + ForwardWarpStereo)


def reference_forward_warp(im: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Forward-Warp bilinear mode: a pixel is splatted only if all 4 corners are inside."""
    b, _c, h, w = im.shape
    out = np.zeros_like(im)
    for n in range(b):
        for y in range(h):
            for x in range(w):
                tx = x + flow[n, y, x, 0]
                ty = y + flow[n, y, x, 1]
                x0, y0 = math.floor(tx), math.floor(ty)
                x1, y1 = x0 + 1, y0 + 1
                if x0 < 0 or x1 >= w or y0 < 0 or y1 >= h:
                    continue
                nw = (x1 - tx) * (y1 - ty)
                ne = (tx - x0) * (y1 - ty)
                sw = (x1 - tx) * (ty - y0)
                se = (tx - x0) * (ty - y0)
                v = im[n, :, y, x]
                out[n, :, y0, x0] += nw * v
                out[n, :, y0, x1] += ne * v
                out[n, :, y1, x0] += sw * v
                out[n, :, y1, x1] += se * v
    return out


def reference_stereo(im: np.ndarray, disp: np.ndarray, eps: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """ForwardWarpStereo(eps=1e-6, occlu_map=True) on numpy float64."""
    wgt = 1.414 ** (disp - disp.min())
    flow = np.stack([-disp[:, 0], np.zeros_like(disp[:, 0])], axis=-1)
    acc = reference_forward_warp(im * wgt, flow)
    norm = np.maximum(reference_forward_warp(wgt, flow), eps)
    cover = reference_forward_warp(np.ones_like(disp), flow)
    return acc / norm, 1.0 - np.clip(cover, 0.0, 1.0)


def random_inputs(seed: int, t: int = 2, h: int = 11, w: int = 17, max_disp: float = 5.0):
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand((t, 3, h, w), generator=gen)
    disparity = (torch.rand((t, 1, h, w), generator=gen) * 2 - 1) * max_disp
    return frames, disparity


# --- agreement with the reference ----------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_everywhere_but_the_last_row(seed: int) -> None:
    frames, disparity = random_inputs(seed)
    right, occlusion = forward_splat(frames, disparity)
    ref_right, ref_occ = reference_stereo(frames.double().numpy(), disparity.double().numpy())
    # Rows 0..H-2 only receive splats from their own row: the last-row fix cannot touch them.
    np.testing.assert_allclose(right[:, :, :-1].numpy(), ref_right[:, :, :-1], atol=1e-5)
    np.testing.assert_allclose(occlusion[:, :, :-1].numpy(), ref_occ[:, :, :-1], atol=1e-5)


def test_general_flow_matches_reference_kernel() -> None:
    """With fractional vertical flow no corner has zero weight: identical to the reference rule."""
    gen = torch.Generator().manual_seed(3)
    values = torch.rand((2, 4, 9, 13), generator=gen, dtype=torch.float64)
    flow = (torch.rand((2, 9, 13, 2), generator=gen, dtype=torch.float64) * 2 - 1) * 3
    ours = bilinear_splat(values, flow)
    ref = reference_forward_warp(values.numpy(), flow.numpy())
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-12)


def test_last_row_is_splatted_unlike_the_reference() -> None:
    frames, disparity = random_inputs(4)
    right, occlusion = forward_splat(frames, disparity)
    ref_right, ref_occ = reference_stereo(frames.double().numpy(), disparity.double().numpy())
    # The reference defect: its last row is always black and always a hole.
    assert np.all(ref_right[:, :, -1] == 0) and np.all(ref_occ[:, :, -1] == 1)
    # Ours treats the last row like any other: compare it with row-wise splatting of that row alone.
    last_right, last_occ = forward_splat(
        torch.cat([frames[:, :, -1:], frames[:, :, -1:]], dim=2),
        torch.cat([disparity[:, :, -1:], disparity[:, :, -1:]], dim=2),
    )
    # (2 identical rows: row 0 of that input is a non-last row, computed as the reference does.)
    np.testing.assert_allclose(right[:, :, -1].numpy(), last_right[:, :, 0].numpy(), atol=1e-5)
    np.testing.assert_allclose(occlusion[:, :, -1].numpy(), last_occ[:, :, 0].numpy(), atol=1e-5)
    assert float(occlusion[:, :, -1].mean()) < 0.5


def test_zero_disparity_is_the_identity_including_borders() -> None:
    frames, _ = random_inputs(5)
    right, occlusion = forward_splat(frames, torch.zeros_like(frames[:, :1]))
    torch.testing.assert_close(right, frames, atol=1e-6, rtol=0)
    assert torch.count_nonzero(occlusion) == 0


# --- geometry ------------------------------------------------------------------------------


def test_constant_disparity_is_a_pure_shift_left() -> None:
    frames, _ = random_inputs(6, w=20)
    shift = 3
    right, occlusion = forward_splat(frames, torch.full_like(frames[:, :1], float(shift)))
    # Near content (positive disparity) moves left: right[x] = left[x + shift].
    torch.testing.assert_close(right[..., :-shift], frames[..., shift:], atol=1e-6, rtol=0)
    assert torch.all(occlusion[..., -shift:] == 1)
    assert torch.all(right[..., -shift:] == 0)
    assert torch.all(occlusion[..., :-shift] == 0)


def test_fractional_shift_interpolates_between_neighbours() -> None:
    frames, _ = random_inputs(7, w=20)
    right, occlusion = forward_splat(frames, torch.full_like(frames[:, :1], 2.25))
    # Target x receives source x+2 (weight 0.75) and x+3 (weight 0.25), normalised...
    expected = 0.75 * frames[..., 2:-1] + 0.25 * frames[..., 3:]
    torch.testing.assert_close(right[..., 1:-3], expected[..., 1:], atol=1e-6, rtol=0)
    assert torch.all(occlusion[..., 1:-3].abs() < 1e-6)
    # ...except x = 0: source 2 lands at -0.25, a weighted corner outside, and is dropped.
    torch.testing.assert_close(right[..., 0], frames[..., 3], atol=1e-6, rtol=0)
    torch.testing.assert_close(occlusion[..., 0], torch.full_like(occlusion[..., 0], 0.75))


def test_synthetic_scene_right_view_and_holes() -> None:
    """Textured planes at three depths: PSNR on visible pixels and IoU of the holes."""
    height, width = 64, 192
    scene = render(default_planes(), height, width)
    frames = scene["left"][None].float()
    disparity = scene["disparity"][None].float()
    right, occlusion = forward_splat(frames, disparity)

    holes = scene["holes"][None]
    visible = ~holes.expand_as(right)
    mse = torch.mean((right[visible].double() - scene["right"][None][visible]) ** 2).item()
    psnr = 10 * math.log10(1.0 / mse)
    predicted = occlusion >= 0.5
    iou = (predicted & holes).sum().item() / (predicted | holes).sum().item()
    assert psnr >= 40.0, f"PSNR {psnr:.2f} dB on non-occluded pixels"
    assert iou >= 0.9, f"occlusion IoU {iou:.3f}"
    # Sanity of the scene itself: holes exist right of near objects and at the left border.
    assert holes[0, 0, 30, 151 - 12 : 150 - 12 + 18].all()  # right of the near plane
    assert holes[0, 0, :, :5].all()  # background moves right: left border is uncovered


def test_near_object_moves_left_and_wins_the_z_buffer() -> None:
    height, width = 8, 40
    frames = torch.zeros((1, 3, height, width))
    frames[:, 0] = 1.0  # red background
    frames[:, :, :, 20:24] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)  # blue near object
    disparity = torch.zeros((1, 1, height, width))
    disparity[..., 20:24] = 5.0
    right, occlusion = forward_splat(frames, disparity)
    # The object now sits at 15..18 where the (static) background also lands: the soft z-buffer
    # weights the nearer splat 1.414 ** 5 times more. Its old place 20..23 is a hole.
    near = 1.414**5
    blue, red = right[0, 2, 4], right[0, 0, 4]
    torch.testing.assert_close(blue[15:19], torch.full((4,), near / (near + 1)))
    torch.testing.assert_close(red[15:19], torch.full((4,), 1 / (near + 1)))
    assert torch.all(occlusion[0, 0, 4, 20:24] == 1)
    assert torch.all(occlusion[0, 0, 4, :20] == 0) and torch.all(occlusion[0, 0, 4, 24:] == 0)
    assert torch.all(red[24:] == 1) and torch.all(red[:15] == 1)


# --- batching, dtypes, devices, validation -------------------------------------------------


def test_batch_equals_frame_by_frame() -> None:
    frames, disparity = random_inputs(8, t=4)
    right, occlusion = forward_splat(frames, disparity)
    for i in range(4):
        r, o = forward_splat(frames[i : i + 1], disparity[i : i + 1])
        torch.testing.assert_close(right[i : i + 1], r, atol=1e-5, rtol=0)
        torch.testing.assert_close(occlusion[i : i + 1], o, atol=1e-6, rtol=0)


def test_fp16_accumulates_in_fp32() -> None:
    frames, disparity = random_inputs(9, max_disp=20.0)
    right16, occ16 = forward_splat(frames.half(), disparity.half())
    assert right16.dtype == torch.float16 and occ16.dtype == torch.float16
    assert torch.isfinite(right16).all()  # 1.414 ** 40 would overflow float16 weights
    # Differences come only from rounding the inputs/outputs to fp16.
    right_ref, occ_ref = forward_splat(frames.half().float(), disparity.half().float())
    torch.testing.assert_close(right16.float(), right_ref, atol=2e-3, rtol=0)
    torch.testing.assert_close(occ16.float(), occ_ref, atol=2e-3, rtol=0)


@pytest.mark.gpu
def test_cuda_matches_cpu() -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    frames, disparity = random_inputs(10, t=3, h=64, w=96, max_disp=20.0)
    right, occlusion = forward_splat(frames, disparity)
    right_gpu, occ_gpu = forward_splat(frames.cuda(), disparity.cuda())
    torch.testing.assert_close(right_gpu.cpu(), right, atol=1e-5, rtol=0)
    torch.testing.assert_close(occ_gpu.cpu(), occlusion, atol=1e-5, rtol=0)


def _crowded(device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames whose disparity jumps across 40 px in every row: many pixels land on each target."""
    frames, _ = random_inputs(11, t=4, h=48, w=96, max_disp=20.0)
    ramp = torch.linspace(-20.0, 20.0, 96).repeat(4, 1, 48, 1)
    disparity = ramp * torch.rand(4, 1, 48, 96, generator=torch.Generator().manual_seed(2))
    return frames.to(device), disparity.to(device)


def test_the_sorted_accumulation_cuda_uses_sums_what_index_add_sums() -> None:
    """On CUDA the splat accumulates with ``index_put_(accumulate=True)`` (sorted, the same order every
    run) instead of ``index_add_`` (atomics): on the CPU both forms give the same sums, so the CUDA
    form is the same splat, up to the order of float additions."""
    from stereocrafter.stereo.splatting import _accumulate

    index = torch.randint(0, 50, (5000,), generator=torch.Generator().manual_seed(3))
    values = torch.rand(5000, 4, generator=torch.Generator().manual_seed(4))
    added = torch.zeros(51, 4)
    _accumulate(added, index, values)  # the CPU's index_add_
    sorted_sum = torch.zeros(51, 4).index_put_((index,), values, accumulate=True)
    torch.testing.assert_close(sorted_sum, added, atol=1e-4, rtol=1e-6)
    assert added.sum().item() == pytest.approx(values.sum().item(), rel=1e-5)


def test_the_cpu_splat_is_the_same_every_run() -> None:
    frames, disparity = _crowded("cpu")
    first = forward_splat(frames, disparity)
    for _ in range(5):
        again = forward_splat(frames, disparity)
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


@pytest.mark.gpu
def test_the_cuda_splat_is_the_same_every_run() -> None:
    """CUDA's ``index_add_`` adds in whatever order its threads arrive; the sorted ``index_put_``
    does not: twenty splats of crowded frames are bit-identical."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    frames, disparity = _crowded("cuda")
    first = forward_splat(frames, disparity)
    for _ in range(20):
        again = forward_splat(frames, disparity)
        assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_disparity_from_depth() -> None:
    depth = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4)
    disp = disparity_from_depth(depth, max_disp=20.0)
    assert disp.flatten().tolist() == [-20.0, -10.0, 0.0, 20.0]


@pytest.mark.parametrize(
    ("depth", "max_disp", "message"),
    [
        (torch.zeros(2, 3, 4), 20.0, "must be \\(T, 1, H, W\\)"),
        (torch.full((1, 1, 2, 2), 1.5), 20.0, "must lie in \\[0, 1\\]"),
        (torch.zeros((1, 1, 2, 2)), -1.0, "max_disp must be"),
        (torch.zeros((1, 1, 2, 2), dtype=torch.long), 20.0, "floating point"),
    ],
)
def test_disparity_from_depth_rejects(depth: torch.Tensor, max_disp: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        disparity_from_depth(depth, max_disp)


def test_forward_splat_rejects_bad_input() -> None:
    frames, disparity = random_inputs(11)
    with pytest.raises(ValueError, match="disparity must be"):
        forward_splat(frames, disparity[:, :, :-1])
    for value, at in (
        (float("nan"), (0, 0, 0, 0)),
        (float("inf"), (1, 0, 5, 9)),
        (float("-inf"), (1, 0, 10, 16)),
    ):
        bad = disparity.clone()
        bad[at] = value
        with pytest.raises(ValueError, match="NaN or Inf"):
            forward_splat(frames, bad)
    with pytest.raises(ValueError, match="frames must be"):
        forward_splat(frames[0], disparity[0])


def test_carrying_the_disparity_is_the_splat_of_it_as_one_more_channel() -> None:
    g = torch.Generator().manual_seed(5)
    frames = torch.rand(3, 3, 12, 40, generator=g)
    disparity = (torch.rand(3, 1, 12, 40, generator=g) - 0.5) * 14
    joined, occlusion = forward_splat(torch.cat([frames, disparity], 1), disparity)
    carried, carried_occlusion = forward_splat(frames, disparity, carry_disparity=True)
    assert carried.shape == (3, 4, 12, 40) and carried.is_contiguous()
    assert torch.equal(carried, joined) and torch.equal(carried_occlusion, occlusion)


def test_the_border_rule_at_its_edges() -> None:
    """A pixel just left of column 0, whose fractional part rounds up to 1, weighs all on column 0
    and is kept; one landing exactly on the last column is kept; one a float step past it, or
    just right of column -1, is dropped (a corner with weight outside)."""
    w = 8
    frames = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).view(1, 1, 1, w) / 8
    tiny = 2.0**-26  # -tiny - floor(-tiny) = 1 - 2**-26 rounds to 1 in float32
    targets = torch.tensor([-tiny, -0.5, 7.0, 7.0 + 2**-21, 3.0, 3.25, 5.0, 6.0])
    sums = bilinear_splat(
        frames, torch.stack([targets - torch.arange(w), torch.zeros(w)], -1).view(1, 1, w, 2)
    )
    expected = torch.zeros(w)
    expected[0] += 1 / 8  # kept, all on column 0
    expected[7] += 3 / 8  # exactly on the last column
    expected[3] += 5 / 8
    expected[3] += 6 / 8 * 0.75
    expected[4] += 6 / 8 * 0.25
    expected[5] += 7 / 8
    expected[6] += 8 / 8
    assert torch.equal(sums.view(w), expected)


def test_the_right_view_needs_no_clamp() -> None:
    """White frames under a z-buffer spanning 1.414 ** 40 and crowded fractional splats: every
    colour sum rounds to at most its weight sum, so no value passes 1 (the pipeline clamps no more)."""
    frames, disparity = _crowded("cpu")
    right, _ = forward_splat(torch.ones_like(frames), disparity)
    assert right.max() == 1.0 and right.min() >= 0.0
    right, _ = forward_splat(frames, disparity)
    assert right.min() >= 0.0 and right.max() <= 1.0


def test_a_depth_clamped_by_its_caller_is_not_read_back() -> None:
    """``in_range``: the pipeline clamps the depth first, so the range check's two read-backs (host
    syncs on a GPU) are skipped; the disparity is the same."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class ReadBacks(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            ReadBacks.count += func._schema.name.endswith("_local_scalar_dense")
            return func(*args, **(kwargs or {}))

    depth = torch.rand(2, 1, 6, 7, generator=torch.Generator().manual_seed(3))
    with ReadBacks():
        trusted = disparity_from_depth(depth, 12.0, in_range=True)
    assert ReadBacks.count == 0
    with ReadBacks():
        checked = disparity_from_depth(depth, 12.0)
    assert ReadBacks.count == 2 and torch.equal(trusted, checked)
