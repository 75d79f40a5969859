"""YUV 4:2:0 <-> RGB on the pipeline's device, so that a GPU host's CPU only decodes, copies planes
and muxes (``bench/host_pipeline.py``: swscale's accurate conversions were most of its 59 CPU ms per
1080p side-by-side frame with NVENC).

Decoding (``yuv420p_to_rgb``, for ``YuvChunk``s that ``media.video_io.iter_frames(planes=True)``
yields): the stream's matrix (BT.709, or BT.601; untagged HD taken as BT.709, as the host path
does) and range; chroma upsampled to full resolution bilinearly from its 4:2:0 sites (left,
co-sited horizontally; centred vertically). Within a few code values of the host path's swscale
(bicubic, full chroma interpolation, accurate rounding): ``tests/media/test_yuv.py`` bounds it.

Encoding, for an encoder that runs on the GPU too (NVENC):

The conversion is what ``media.encode.VideoWriter`` asks of swscale (``SCALE_TO_BT709``): BT.709
matrix, limited ("tv") range, 8 bits, chroma sited "left" (co-sited with the even luma columns,
centred between two rows). Luma: Y' = 16 + 219 (0.2126 R + 0.7152 G + 0.0722 B), R G B in [0, 1].
Chroma from each 2x2 block's column pair: the rows averaged, then a [1, 2, 1] / 4 filter across the
columns centred on the even one (the edge column repeated); Cb = 128 + 224 (B - Y) / 1.8556, Cr =
128 + 224 (R - Y) / 1.5748; each rounded to the nearest code. swscale's bicubic, accurate-rounding
path differs from this by at most a code value or two (``tests/media/test_yuv.py`` bounds it);
libx264's path keeps swscale, so its output is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

KR, KB = 0.2126, 0.0722  # BT.709
KG = 1.0 - KR - KB
MATRICES = {True: (0.2126, 0.0722), False: (0.299, 0.114)}  # BT.709, BT.601: (Kr, Kb)


@dataclass(frozen=True)
class YuvChunk:
    """Decoded frames as they came: ``planes`` (t, h * 3 // 2, w) uint8 (Y, then U, then V; numpy
    or torch), their matrix (``bt709``, else BT.601) and range (``full``, else limited)."""

    planes: Any
    bt709: bool
    full: bool

    def __len__(self) -> int:
        return int(self.planes.shape[0])


def yuv420p_to_rgb(chunk: YuvChunk, device: torch.device) -> torch.Tensor:
    """``chunk`` -> (t, 3, h, w) float32 RGB in [0, 1] on ``device`` (the planes copied there first)."""
    planes = torch.as_tensor(chunk.planes).to(device, non_blocking=True)
    t, rows, w = planes.shape
    h = rows * 2 // 3
    y = planes[:, :h].float()
    uv = planes[:, h:].reshape(t, 2, h // 2, w // 2).float()
    if chunk.full:
        luma, chroma = y / 255.0, (uv - 128.0) / 255.0
    else:
        luma, chroma = (y - 16.0) / 219.0, (uv - 128.0) / 224.0
    # chroma at every pixel: rows from their centres (bilinear), columns from the even sites
    tall = F.interpolate(chroma, size=(h, w // 2), mode="bilinear", align_corners=False)
    right = torch.cat([tall[..., 1:], tall[..., -1:]], -1)
    full_chroma = torch.stack([tall, (tall + right) * 0.5], -1).reshape(t, 2, h, w)
    kr, kb = MATRICES[chunk.bt709]
    cb, cr = full_chroma[:, 0], full_chroma[:, 1]
    r = luma + 2 * (1 - kr) * cr
    b = luma + 2 * (1 - kb) * cb
    g = (luma - kr * r - kb * b) / (1 - kr - kb)
    return torch.stack([r, g, b], 1).clamp_(0.0, 1.0)


def rgb_to_yuv420p(frames: torch.Tensor) -> torch.Tensor:
    """frames (t, h, w, 3) uint8 RGB (``stereo.compose``'s output), h and w even -> (t, h * 3 // 2,
    w) uint8 on the same device: the Y plane, then U, then V (h / 2 x w / 2 each), the layout of
    ``av.VideoFrame.from_ndarray(..., format="yuv420p")``."""
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs an even size, got {w}x{h}")
    rgb = frames.permute(0, 3, 1, 2).float() / 255.0  # (t, 3, h, w)
    r, g, b = rgb[:, 0], rgb[:, 1], rgb[:, 2]
    luma = KR * r + KG * g + KB * b  # (t, h, w) in [0, 1]
    y = luma * 219.0 + 16.0
    # chroma at full resolution, then the 2x2 block's rows averaged and the columns filtered
    # [1, 2, 1] / 4 about the even column (left siting)
    chroma = torch.stack([(b - luma) / (2 * (1 - KB)), (r - luma) / (2 * (1 - KR))], 1)  # (t, 2, h, w)
    rows = (chroma[:, :, 0::2] + chroma[:, :, 1::2]) * 0.5  # (t, 2, h / 2, w)
    padded = F.pad(rows.reshape(t * 2, 1, h // 2, w), (1, 1, 0, 0), mode="replicate")
    taps = torch.tensor([0.25, 0.5, 0.25], dtype=rows.dtype, device=rows.device).view(1, 1, 1, 3)
    sited = F.conv2d(padded, taps, stride=(1, 2)).view(t, 2, h // 2, w // 2)
    uv = sited * 224.0 + 128.0
    planes = torch.cat([y.reshape(t, -1), uv.reshape(t, -1)], 1)
    return planes.round_().clamp_(0, 255).to(torch.uint8).view(t, h * 3 // 2, w)
