"""Video Depth Anything's inference procedure (``infer_video_depth`` of the published code) as a
streaming depth stage: frames at the processing size in, affine-invariant inverse depth out, window by
window; the `turbo` preset's depth stage (``depth_stages.VdaStage``).

The published procedure, reproduced:

1. Processing size (``processing_size``): 518 unless the aspect ratio is above 1.78 (then
   int(518 x 1.777 / ratio), rounded to a multiple of 14); each side scaled so that both are at least
   that size, keeping the aspect ratio, rounded to a multiple of 14 (up when rounding would go below).
   1920x1080 -> 518x924. ImageNet mean and std normalise the frames.
2. Windows of 32 frames with a step of 22 (``plan_windows``); the clip is padded at its end with
   copies of its last frame. Every window after the first takes, as its first 10 inputs, the previous
   window's inputs at the key frames [0, 12, 24, 25, ..., 31].
3. Every window after the first is aligned to the result by least squares (scale and shift) on its
   first two outputs (key frames 0 and 12 of the previous window) against the reference depths: the
   first window's frame 0 and the previous window's aligned key frame 12. Aligned depth is clamped at
   0; the 8 frames two windows share are blended linearly (the new window's weight 0 -> 1).

The fit is the published one: with ``frame_size`` (the pipeline passes the source's) the two
frames fitted and the two reference frames are resized to the frame size (bilinear,
align_corners) and the least squares run there, as the reference aligns; four frames at the frame
size are held, not the window.

Deliberate differences (memory stays bounded by a window; both named in the README):
- The depth is kept at the processing size: the reference resizes every window's depth to the
  frame size before aligning and keeps it there. With the fit taken at the frame size the scale
  and shift are the reference's; the resize is linear, so mapping and blending before or after it
  agree up to rounding, and only the clamp at 0 (applied here before the later resize, there after
  it) differs where aligned depth crosses 0 (bench/vda_align.py measures the whole difference).
- Frames are read window by window and finished frames are handed on at once; the reference holds
  the whole clip's frames and depth. The least-squares sums are taken in float64 (the reference:
  float32), which changes the fit by rounding only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F

from stereocrafter.config import REFERENCE
from stereocrafter.models.depth import FrameSource  # frames at the processing size, asked in order
from stereocrafter.models.vda import PATCH

INPUT_SIZE = REFERENCE.depth_input_size  # 518, the published --input_size (``config``)
WINDOW = 32
OVERLAP = 10
STEP = WINDOW - OVERLAP  # 22
KEYFRAMES = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)
BLEND = 8  # frames two windows share in the result (OVERLAP - the 2 key frames used for the fit)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Window(NamedTuple):
    """Frames [start, end) of the padded clip; ``new``: the clip's frames it finishes."""

    start: int
    end: int
    new: int


def processing_size(height: int, width: int, input_size: int = INPUT_SIZE) -> tuple[int, int]:
    """(h, w) the model sees for a frame of ``height`` x ``width`` (step 1 of the module docstring)."""
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be >= 1, got {height}x{width}")
    ratio = max(height, width) / min(height, width)
    if ratio > 1.78:
        input_size = round(int(input_size * 1.777 / ratio) / PATCH) * PATCH
    scale = max(input_size / height, input_size / width)

    def side(x: float) -> int:
        y = round(x / PATCH) * PATCH  # numpy's and Python's round: half to even
        return math.ceil(x / PATCH) * PATCH if y < input_size else y

    return side(scale * height), side(scale * width)


def plan_windows(num_frames: int) -> list[Window]:
    """The windows the procedure walks: starts 0, 22, 44, ... below ``num_frames``; the first
    finishes its first 24 frames (its last 8 are blended with the next window), each later one 22,
    the last one everything left."""
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    starts = list(range(0, num_frames, STEP))
    windows, done = [], 0
    for i, start in enumerate(starts):
        finished = num_frames if i == len(starts) - 1 else start + WINDOW - BLEND
        windows.append(Window(start, start + WINDOW, min(finished, num_frames) - done))
        done = min(finished, num_frames)
    return windows


def fit_scale_shift(prediction: torch.Tensor, target: torch.Tensor) -> tuple[float, float]:
    """Least squares ``scale * prediction + shift ~ target`` over every value; (1, 0) when the
    prediction is constant (the reference's singular case)."""
    p, t = prediction.double().flatten(), target.double().flatten()
    a00, a01, a11 = float((p * p).sum()), float(p.sum()), float(p.numel())
    b0, b1 = float((p * t).sum()), float(t.sum())
    det = a00 * a11 - a01 * a01
    if det == 0:
        return 1.0, 0.0
    return (a11 * b0 - a01 * b1) / det, (-a01 * b0 + a00 * b1) / det


class VdaDepthPipeline:
    """``model``: a ``VideoDepthAnything`` (or anything taking (1, 32, 3, h, w) normalised frames to
    (1, 32, h, w) depth). ``autocast``: run it under float16 autocast on CUDA, as the reference does
    unless asked for float32."""

    def __init__(
        self, model: torch.nn.Module, *, autocast: bool = True, autocast_dtype: torch.dtype | None = None
    ) -> None:
        self.model, self.autocast = model, autocast
        # None: float16 on CUDA only (the published code); a dtype: autocast to it on any device
        # (the CPU tier of the tests runs the GPU's half precision this way)
        self.autocast_dtype = autocast_dtype

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _normalised(self, frames: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=frames.device, dtype=frames.dtype).view(1, 3, 1, 1)
        return (frames - mean) / std

    def _window_depth(self, inputs: torch.Tensor) -> torch.Tensor:
        """(32, 3, h, w) normalised -> (32, h, w) float32 depth."""
        use_autocast = self.autocast and (inputs.device.type == "cuda" or self.autocast_dtype is not None)
        dtype = self.autocast_dtype or torch.float16
        with (
            torch.no_grad(),
            torch.autocast(device_type=inputs.device.type, dtype=dtype, enabled=use_autocast),
        ):
            depth: torch.Tensor = self.model(inputs[None])[0]
        return depth.float()

    def iter_depth(
        self, frames: FrameSource, frame_size: tuple[int, int] | None = None
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield (start, depth) in order, depth (t, 1, h, w) float32 on the CPU, until every frame of
        ``frames`` has its depth. Host and device memory hold one window and the 8 frames to blend.
        ``frame_size``: (height, width) to fit the windows' alignment at (see the module docstring;
        None: at the processing size)."""

        def at_fit_size(depth: torch.Tensor) -> torch.Tensor:
            if frame_size is None or tuple(depth.shape[-2:]) == tuple(frame_size):
                return depth
            return F.interpolate(depth[:, None], size=frame_size, mode="bilinear", align_corners=True)[:, 0]

        num_frames = len(frames)
        emitted = 0
        previous: torch.Tensor | None = None  # the last window's inputs (after the key-frame swap)
        reference: list[torch.Tensor] = []  # aligned depth of frame 0, and of the last key frame 12
        tail: torch.Tensor | None = None  # the last 8 aligned frames, to blend with the next window
        windows = plan_windows(num_frames)
        for index, window in enumerate(windows):
            # 1. The window's inputs: its frames, the clip's last frame repeated past the end, and
            #    (after the first) the previous window's key frames in its first 10 places.
            real = self._normalised(frames[window.start : min(window.end, num_frames)].to(self.device))
            pad = real[-1:].expand(WINDOW - real.shape[0], *real.shape[1:])
            inputs = torch.cat([real, pad]) if pad.shape[0] else real
            if previous is not None:
                inputs = torch.cat([previous[list(KEYFRAMES)], inputs[OVERLAP:]])
            previous = inputs
            depth = self._window_depth(inputs)
            # 2. Alignment to the result so far.
            if not reference:
                aligned = depth
                reference = list(at_fit_size(depth[[0, KEYFRAMES[1]]]))
            else:
                scale, shift = fit_scale_shift(at_fit_size(depth[:2]), torch.stack(reference))
                mapped = (depth * scale + shift).clamp(min=0)
                assert tail is not None
                weight = torch.linspace(0, 1, BLEND, device=depth.device).view(BLEND, 1, 1)
                blended = tail * (1 - weight) + mapped[OVERLAP - BLEND : OVERLAP] * weight
                aligned = torch.cat([blended, mapped[OVERLAP:]])
                # the reference's key frame: mapped and clamped at the fit size
                reference = [reference[0], (at_fit_size(depth[KEYFRAMES[1] : KEYFRAMES[1] + 1])[0] * scale
                                            + shift).clamp(min=0)]  # fmt: skip
            # 3. Hand on what no later window changes.
            last = index == len(windows) - 1
            keep = aligned if last else aligned[:-BLEND]
            tail = None if last else aligned[-BLEND:]
            count = min(keep.shape[0], num_frames - emitted)
            if count:
                yield emitted, keep[:count, None].cpu()
                emitted += count
        assert emitted == num_frames
