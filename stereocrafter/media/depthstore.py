"""A segment's raw depth on disk, and the small summary the alignment of segments works from.

Format (``write_depth``/``read_depth``): Matroska holding one FFV1 video stream of 16-bit grey
frames (``gray16le``; FFV1 version 3: every frame a key frame, slice CRCs on), at the depth stage's
processing size and the segment's frame rate. Raw depth d in [low, high] (the segment's own min and
max) is stored as q = round((d - low) / (high - low) * 65535); ``low`` and ``high`` are written
exactly (Python's float repr) in the container's ``STEREOCRAFTER_DEPTH`` tag, a JSON object with the
frame count, the source segment's size and the depth model that made it (``depth_model``; a file
without it predates the second model and was made by DepthCrafter), so a reader can refuse a depth
that belongs to another segment or to another model (two models' raw depths are not on one scale).

FFV1 is lossless: reading gives back q exactly, so the only loss is the 16-bit quantisation, at
most (high - low) / 131070 per value: 1.5e-4 px of disparity at max_disp 20. Depth maps are smooth,
and FFV1's context modelling stores them at a fraction of their 2 bytes per pixel (measured per
frame in bench/depth_store.py and docs/long-videos.md). Any player or ``ffprobe`` opens the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np
import torch
import torch.nn.functional as F

from stereocrafter.bounds import MAX_DEPTH_VALUE
from stereocrafter.catalog import DEFAULT_DEPTH_MODEL
from stereocrafter.errors import DepthMismatchError, InvalidDepthError
from stereocrafter.guard import Every, Stop

TAG = "STEREOCRAFTER_DEPTH"
FORMAT_VERSION = 1
LEVELS = 65535
DEPTH_THUMB = 64  # long side of the depth thumbnails (64 x 36 for 16:9)
COLOUR_THUMB = 32  # long side of the colour thumbnails
SUBSAMPLE = 4096  # pixels per frame pooled for the clip's percentiles


@dataclass(frozen=True)
class DepthShape:
    """What one segment needs of its stored depth: the segment's frame count and size, and the
    depth stage's processing size for that size (``depth.processing_size``), which is the size
    ``write_depth`` stored. ``read_depth`` checks a file against it before decoding anything."""

    frames: int
    source_width: int
    source_height: int
    width: int  # of the depth frames
    height: int
    model: str = DEFAULT_DEPTH_MODEL  # the depth model the segment's preset runs

    @property
    def nbytes(self) -> int:
        """Bytes of the decoded depth (float32)."""
        return self.frames * self.width * self.height * 4


@dataclass(frozen=True)
class StoredDepth:
    depth: torch.Tensor  # (T, 1, h, w) float32 raw depth
    low: float
    high: float
    source_width: int
    source_height: int
    meta: dict[str, Any]

    @property
    def num_frames(self) -> int:
        return int(self.depth.shape[0])


def write_depth(
    path: str | os.PathLike[str],
    depth: torch.Tensor,
    *,
    fps: Fraction,
    source_width: int,
    source_height: int,
    model: str = DEFAULT_DEPTH_MODEL,
    extra: dict[str, Any] | None = None,
    stop: Stop | None = None,
) -> dict[str, Any]:
    """Store raw depth (T, 1, h, w) made by the depth model ``model`` at ``path`` (.mkv); returns
    the tag it wrote. ``stop`` (a job's deadline) runs every half second (FFV1 takes up to 40 ms a
    1024x576 frame)."""
    if depth.ndim != 4 or depth.shape[1] != 1 or depth.shape[0] < 1:
        raise ValueError(f"depth must be (T, 1, h, w) with T >= 1, got {tuple(depth.shape)}")
    values = depth[:, 0].detach().float().cpu()
    if not torch.isfinite(values).all():
        raise ValueError("the depth holds non-finite values")
    low, high = float(values.min()), float(values.max())
    span = high - low
    num_frames, height, width = values.shape
    meta = {
        "version": FORMAT_VERSION,
        "low": low,
        "high": high,
        "frames": num_frames,
        "source_width": source_width,
        "source_height": source_height,
        "depth_model": model,
        **(extra or {}),
    }
    with av.open(str(path), mode="w", format="matroska") as out:
        out.metadata[TAG] = json.dumps(meta)
        # FFV1 version 3: every frame a key frame, CRC per slice (a damaged object is detected)
        options = {"level": "3", "slicecrc": "1", "g": "1"}
        stream = out.add_stream("ffv1", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray16le"
        every = Every(stop)
        for t in range(num_frames):
            every()
            if span > 0:
                q = ((values[t] - low) / span * LEVELS).round().clamp(0, LEVELS).to(torch.int32)
            else:
                q = torch.zeros(height, width, dtype=torch.int32)
            frame = av.VideoFrame.from_ndarray(q.numpy().astype(np.uint16), format="gray16le")
            frame.pts = t
            frame.time_base = 1 / fps
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return meta


def read_depth(path: str | os.PathLike[str], expect: DepthShape, stop: Stop | None = None) -> StoredDepth:
    """The depth ``write_depth`` stored for the segment ``expect`` describes.

    Everything is checked before the first frame is decoded, so a crafted file (frames that
    compress to nothing and decode to gigabytes) costs no memory: the tag (low and high finite,
    within ``bounds.MAX_DEPTH_VALUE``), its frame count and source size against ``expect``
    (``DepthMismatchError``, 422), then the stream's codec, pixel format and dimensions
    (``InvalidDepthError`` / ``DepthMismatchError``, 422). The decode then fills a tensor of
    exactly ``expect``'s size and stops one frame past the tag's count; every frame is checked
    again (format, size, corruption). ``stop`` (a job's deadline) runs every half second.
    """
    name = "the depth object"
    try:
        container = av.open(str(path), mode="r")
    except av.error.FFmpegError:
        raise InvalidDepthError(f"{name} is not a readable depth file (Matroska with FFV1)") from None
    with container:
        meta, low, high = _read_tag(container, name)
        _check_shape(container, meta, expect, name)
        stream = container.streams.video[0]
        values = torch.empty(expect.frames, 1, expect.height, expect.width, dtype=torch.float32)
        decoded = 0
        every = Every(stop)
        try:
            for frame in container.decode(stream):
                every()
                if decoded == expect.frames:
                    raise InvalidDepthError(f"{name} holds more frames than its tag's {expect.frames}")
                if (
                    frame.format.name != "gray16le"
                    or (frame.width, frame.height) != (expect.width, expect.height)
                    or frame.is_corrupt
                ):
                    raise InvalidDepthError(f"{name}: frame {decoded} is not intact 16-bit depth")
                values[decoded, 0] = torch.from_numpy(frame.to_ndarray().astype(np.float32))
                decoded += 1
        except av.error.FFmpegError:
            raise InvalidDepthError(f"{name} is damaged after frame {decoded}") from None
    if decoded != expect.frames:
        raise InvalidDepthError(f"{name} holds {decoded} frames; its tag says {expect.frames}")
    depth = low + values / LEVELS * (high - low) if high > low else values.fill_(low)
    return StoredDepth(depth, low, high, expect.source_width, expect.source_height, meta)


def _read_tag(container: av.container.InputContainer, name: str) -> tuple[dict[str, Any], float, float]:
    """The ``TAG`` JSON of a depth file with its low and high, or ``InvalidDepthError``."""
    try:
        meta = json.loads(container.metadata.get(TAG, ""))
        low, high = float(meta["low"]), float(meta["high"])
        int(meta["frames"]), int(meta["source_width"]), int(meta["source_height"])
    except (ValueError, KeyError, TypeError):
        raise InvalidDepthError(f"{name} has no valid {TAG} tag (not written by this service?)") from None
    if not (np.isfinite([low, high]).all() and high >= low and max(abs(low), abs(high)) <= MAX_DEPTH_VALUE):
        raise InvalidDepthError(f"{name} has an invalid {TAG} tag (its low and high)")
    return meta, low, high


def _check_shape(container: av.container.InputContainer, meta: dict[str, Any], expect: DepthShape,
                 name: str) -> None:  # fmt: skip
    """The tag and the stream against what the segment needs, before any frame is decoded."""
    frames, source = int(meta["frames"]), (int(meta["source_width"]), int(meta["source_height"]))
    model = str(meta.get("depth_model", DEFAULT_DEPTH_MODEL))
    if model != expect.model:
        raise DepthMismatchError(
            f"the stored depth was made by {model[:40]!r}; this preset's depth model is {expect.model!r} "
            "(two models' raw depths are on different scales): make the depth with this preset"
        )
    if frames != expect.frames:
        raise DepthMismatchError(f"the stored depth has {frames} frames; the segment has {expect.frames}")
    if source != (expect.source_width, expect.source_height):
        raise DepthMismatchError(
            f"the stored depth was made from a {source[0]}x{source[1]} segment; "
            f"this segment is {expect.source_width}x{expect.source_height}"
        )
    if not container.streams.video or container.streams.video[0].codec_context.name != "ffv1":
        raise InvalidDepthError(f"{name} holds no FFV1 depth stream")
    context = container.streams.video[0].codec_context
    if context.pix_fmt != "gray16le":
        raise InvalidDepthError(f"{name}'s stream is {context.pix_fmt}, not 16-bit grey (gray16le)")
    if (context.width, context.height) != (expect.width, expect.height):
        raise DepthMismatchError(
            f"the stored depth's frames are {context.width}x{context.height}; the depth stage makes "
            f"{expect.width}x{expect.height} for this segment"
        )


def thumbnail_size(height: int, width: int, long_side: int) -> tuple[int, int]:
    """(h, w) with the long side ``long_side`` and the frame's aspect ratio."""
    if width >= height:
        return max(1, round(height * long_side / width)), long_side
    return long_side, max(1, round(width * long_side / height))


def _area(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.adaptive_avg_pool2d(x.float(), size)


def depth_summary(depth: torch.Tensor, first_rgb: np.ndarray, last_rgb: np.ndarray) -> dict[str, Any]:
    """What the client aligns segments with: raw-depth statistics (min, max, 1st and 99th
    percentiles of every pixel; the percentiles over ``SUBSAMPLE`` evenly spaced pixels per
    frame), area-averaged thumbnails of the raw depth of the first two and last two frames (long
    side ``DEPTH_THUMB``; the second ones let the alignment allow for motion) and of the first and
    last frames' colours (uint8 RGB, long side ``COLOUR_THUMB``)."""
    values = depth[:, 0].float()
    num_frames, height, width = values.shape
    flat = values.reshape(num_frames, -1)
    step = max(1, flat.shape[1] // SUBSAMPLE)
    pooled = flat[:, ::step].reshape(-1).double()
    pooled = pooled[:: -(-pooled.numel() // 2**24)]  # torch.quantile's limit: 2**24 values
    p1, p99 = torch.quantile(pooled, torch.tensor([0.01, 0.99], dtype=torch.float64)).tolist()
    dh, dw = thumbnail_size(height, width, DEPTH_THUMB)
    ends = [0, min(1, num_frames - 1), max(num_frames - 2, 0), num_frames - 1]
    thumbs = _area(values[ends][:, None], (dh, dw))[:, 0]

    def colour(rgb: np.ndarray) -> list[list[list[int]]]:
        ch, cw = thumbnail_size(rgb.shape[0], rgb.shape[1], COLOUR_THUMB)
        small = _area(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None], (ch, cw))[0]
        out: list[list[list[int]]] = small.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).tolist()
        return out

    def rounded(x: torch.Tensor) -> list[list[float]]:
        return [[float(f"{v:.6g}") for v in row] for row in x.tolist()]

    return {
        "stats": {"min": float(values.min()), "max": float(values.max()), "p1": p1, "p99": p99},
        "thumbnails": {
            "depth_first": rounded(thumbs[0]),
            "depth_second": rounded(thumbs[1]),
            "depth_second_last": rounded(thumbs[2]),
            "depth_last": rounded(thumbs[3]),
            "colour_first": colour(first_rgb),
            "colour_last": colour(last_rgb),
        },
    }
