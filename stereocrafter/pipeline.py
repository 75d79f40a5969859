"""StereoPipeline: left video -> depth -> disparity -> forward splat -> inpainting -> stereo frames.

No I/O here: frames come from a callable that opens a fresh iterator of uint8 RGB chunks (the video
decoder, in practice) and composed frames go to a sink callable (the video encoder). Host memory is
bounded by a window or chunk of frames, not by the clip:

1. Depth pass: the frames are read once, resized to the depth resolution and given to DepthCrafter
   window by window; only the raw depth at depth resolution (one float per depth pixel) is kept for
   the clip, because normalisation is over the whole video (reference §1.6).
2. Stereo pass: the frames are read again in the inpainting chunks' order; each requested range is
   normalised, resized to the source size, turned into disparity and splatted (in batches of 10, as
   the reference), the holes are inpainted chunk by chunk, and the kept frames are composed and
   handed to the sink.

Two decode passes trade a cheap second decode for not holding the clip (reference notes §8.2).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from stereocrafter import depth as depth_stage
from stereocrafter import inpainting as inpainting_stage
from stereocrafter.bounds import check_depth_range, wide_enough
from stereocrafter.compose import check_mode, compose, output_size, to_uint8
from stereocrafter.depth import (
    DepthCrafterPipeline,
    processing_size,
    resize_frames,
)
from stereocrafter.inpainting import StereoInpaintingPipeline
from stereocrafter.merge import enlarge, hole_weights, merge_right_view, shrink, working_size
from stereocrafter.presets import PRESETS, check_preset
from stereocrafter.splatting import disparity_from_depth, forward_splat
from stereocrafter.streams import prefetch

FrameChunks = Iterator[np.ndarray]  # (t, H, W, 3) uint8 RGB chunks, in order
HostChunks = Iterator[np.ndarray] | Iterator[torch.Tensor]  # the same, as numpy or torch
OpenFrames = Callable[[], FrameChunks]
Sink = Callable[[np.ndarray], None]  # receives (t, H_out, W_out, 3) uint8
Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Observer(Protocol):
    """Sees what a run holds without changing it (``report.QualityReport`` is one): the clip's
    facts once, before the stereo pass, then every composed chunk's full-size tensors."""

    def on_start(self, *, num_frames: int, width: int, height: int, config: StereoConfig,
                 depth_range: tuple[float, float], seams: list[int]) -> None: ...  # fmt: skip

    def on_frames(self, start: int, left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor,
                  right: torch.Tensor) -> None: ...  # fmt: skip


@dataclass(frozen=True)
class StereoConfig:
    """Every parameter of the two stages; defaults are the reference's."""

    max_disp: float = 20.0
    depth_steps: int = depth_stage.DEFAULT_STEPS
    depth_guidance: float = depth_stage.DEFAULT_GUIDANCE
    depth_window: int = depth_stage.DEFAULT_WINDOW
    depth_overlap: int = depth_stage.DEFAULT_OVERLAP
    depth_max_res: int = depth_stage.DEFAULT_MAX_RES
    noise_aug_strength: float = depth_stage.DEFAULT_NOISE_AUG
    depth_decode_chunk: int = depth_stage.DEFAULT_DECODE_CHUNK
    inpaint_steps: int = inpainting_stage.DEFAULT_STEPS
    inpaint_guidance: float = inpainting_stage.DEFAULT_GUIDANCE
    frames_chunk: int = inpainting_stage.DEFAULT_FRAMES_CHUNK
    inpaint_overlap: int = inpainting_stage.DEFAULT_OVERLAP
    tile_num: int = inpainting_stage.DEFAULT_TILE_NUM
    splat_batch: int = 10
    seed: int = depth_stage.DEFAULT_SEED
    # The reference inpaints the whole frame at the source size and takes all of it. The `fast`
    # preset caps the inpainting's long side and keeps the splat outside the (grown) holes.
    inpaint_max_res: int = 0  # 0: the source size
    holes_only: bool = False  # True: splatted pixels outside the holes, exactly
    hole_dilate_px: int = 0  # holes grown by this much before merging (source pixels)
    hole_feather_px: int = 0  # then a linear fade over this many pixels

    def __post_init__(self) -> None:
        if not (0.0 <= self.max_disp <= 200.0):
            raise ValueError(f"max_disp must be in [0, 200] pixels, got {self.max_disp}")
        if self.splat_batch < 1:
            raise ValueError(f"splat_batch must be >= 1, got {self.splat_batch}")
        if self.inpaint_max_res < 0 or (self.inpaint_max_res and self.inpaint_max_res < 64):
            raise ValueError(
                f"inpaint_max_res must be 0 (the source size) or >= 64, not {self.inpaint_max_res}"
            )
        if self.inpaint_max_res and not self.holes_only:
            raise ValueError(
                "inpaint_max_res needs holes_only: a resized inpaint is merged only into the holes"
            )
        if self.hole_dilate_px < 0 or self.hole_feather_px < 0:
            raise ValueError("hole_dilate_px and hole_feather_px must be >= 0")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> StereoConfig:
        """The preset's table (``presets.PRESETS``) over the defaults, then ``overrides``."""
        return cls(**{**PRESETS[check_preset(name)], **overrides})


@dataclass
class StereoResult:
    num_frames: int
    width: int  # of the composed output
    height: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


class SequentialFrames:
    """Serve increasing, possibly overlapping index ranges from a one-pass iterator of chunks.

    Keeps only the frames from the start of the last request on (a window or a chunk).
    ``transform`` maps each decoded uint8 chunk to what callers get (e.g. a float tensor).
    """

    def __init__(self, chunks: HostChunks, num_frames: int, transform: Callable[[Any], torch.Tensor]) -> None:
        self._chunks, self._num_frames, self._transform = chunks, num_frames, transform
        self._buffer: list[torch.Tensor] = []
        self._buffer_start = 0  # index of the first buffered frame
        self._buffered = 0

    def __len__(self) -> int:
        return self._num_frames

    def __getitem__(self, index: slice) -> torch.Tensor:
        start, stop = index.start or 0, min(index.stop, self._num_frames)
        if start < self._buffer_start:
            raise IndexError(f"frames before {self._buffer_start} were released (asked for {start})")
        while self._buffer_start + self._buffered < stop:
            chunk = next(self._chunks, None)
            if chunk is None:
                raise ValueError(
                    f"the video ended after {self._buffer_start + self._buffered} frames; "
                    f"{self._num_frames} were expected"
                )
            tensor = self._transform(chunk)
            self._buffer.append(tensor)
            self._buffered += tensor.shape[0]
        frames = torch.cat(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        offset = start - self._buffer_start
        # Release what precedes this request: later requests never go back further.
        self._buffer, self._buffer_start, self._buffered = [frames[offset:]], start, frames.shape[0] - offset
        return frames[offset : offset + stop - start]


class StereoPipeline:
    """Both stages on one device, configured by ``StereoConfig``."""

    def __init__(
        self,
        depth: DepthCrafterPipeline,
        inpainting: StereoInpaintingPipeline,
        config: StereoConfig | None = None,
    ) -> None:
        self.depth = depth
        self.inpainting = inpainting
        self.config = config or StereoConfig()
        self.device = depth._execution_device

    def _host_tensor(self, chunk: np.ndarray) -> torch.Tensor:
        """(t, H, W, 3) uint8 numpy -> the same as a torch tensor, in page-locked memory when the
        device is a GPU (so the copy to it can be asynchronous). Runs in the decoding thread."""
        tensor = torch.from_numpy(np.ascontiguousarray(chunk))
        return tensor.pin_memory() if self.device.type == "cuda" else tensor

    def _to_tensor(self, chunk: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(t, H, W, 3) uint8 -> (t, 3, H, W) float32 in [0, 1] on the device."""
        host = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
        return host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0

    def _frames(self, open_frames: OpenFrames) -> Iterator[torch.Tensor]:
        """One pass over the decoded frames, decoded ahead in a thread (``streams.prefetch``)."""
        return prefetch(open_frames(), self._host_tensor)

    def _generator(self, seed: int) -> torch.Generator:
        """Noise is drawn on the device itself: no host round trip inside the loops. A seed gives
        the same output on a given device; CPU and CUDA generators draw different numbers."""
        return torch.Generator(device=self.device).manual_seed(seed)

    def run(
        self,
        open_frames: OpenFrames,
        sink: Sink,
        *,
        num_frames: int,
        width: int,
        height: int,
        mode: str = "anaglyph",
        progress: Progress | None = None,
        grid_sink: Sink | None = None,
        observer: Observer | None = None,
        depth: torch.Tensor | None = None,
        depth_map: tuple[float, float] | None = None,
        depth_range: tuple[float, float] | None = None,
        check: Callable[[], None] | None = None,
    ) -> StereoResult:
        """Convert one clip. ``open_frames()`` is called twice (one pass per stage) and must yield
        the same ``num_frames`` frames of ``width`` x ``height`` each time (once, when ``depth``
        is given).

        For long videos converted in segments (``stereocrafter.align``): ``depth`` is the clip's
        raw depth stored by an earlier ``depth_pass`` ((T, 1, h, w), any h x w: it is resized to
        the source size), so no depth pass runs; ``depth_map`` = (scale, shift) maps the raw depth
        into a reference segment's scale; ``depth_range`` = (low, high) normalises with that range
        instead of the clip's own min and max (values outside it are clamped). Without the three,
        the run is the reference's: the clip's own depth, normalised by its own min and max.

        ``check()`` is called after every UNet evaluation and between stages; whatever it raises
        (``guard.Deadline``'s 504) stops the run there.
        """
        mode = check_mode(mode)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        cfg = self.config
        timings: dict[str, float] = {}
        report = progress or (lambda stage, done, total: None)

        # 1. Depth at the processing resolution, one window at a time (or the stored one).
        if depth is None:
            started = time.perf_counter()
            raw_depth = self.depth_pass(open_frames, num_frames=num_frames, width=width, height=height,
                                        progress=progress, check=check)  # fmt: skip
            timings["depth"] = time.perf_counter() - started
        else:
            if depth.ndim != 4 or depth.shape[:2] != (num_frames, 1):
                raise ValueError(
                    f"the stored depth is {tuple(depth.shape)}; this clip needs ({num_frames}, 1, h, w)"
                )
            raw_depth = depth
        raw_depth, low, high = common_scale(raw_depth, depth_map, depth_range)

        # 2. Splat and inpaint chunk by chunk; compose and hand over the kept frames.
        if observer is not None:
            chunks = inpainting_stage.plan_chunks(num_frames, cfg.frames_chunk, cfg.inpaint_overlap)
            seams = [chunk.start + chunk.reused for chunk in chunks[1:]]  # first frame each later chunk keeps
            observer.on_start(num_frames=num_frames, width=width, height=height, config=cfg,
                              depth_range=(low, high), seams=seams)  # fmt: skip
        work = working_size(height, width, cfg.inpaint_max_res)
        stereo = _StereoSource(
            self, self._frames(open_frames), num_frames, raw_depth, (low, high), (height, width), work
        )
        started = time.perf_counter()
        out_w, out_h = output_size(mode, width, height)
        written = 0

        if check is not None:
            check()
        inpaint_progress = StageProgress(
            report, "inpainting", num_frames, inpainting_increments(num_frames, cfg), check=check
        )
        with inpaint_progress.watching(self.inpainting.unet, *_decoders(self.inpainting)):
            for start, right in self.inpainting.iter_inpaint(
                stereo,
                num_inference_steps=cfg.inpaint_steps,
                guidance_scale=cfg.inpaint_guidance,
                frames_chunk=cfg.frames_chunk,
                overlap=cfg.inpaint_overlap,
                tile_num=cfg.tile_num,
                generator=self._generator(cfg.seed),
            ):
                composed_at = time.perf_counter()
                left, depth_vis, occlusion, warped = stereo.kept(start, right.shape[0])
                if cfg.holes_only:  # the inpaint only inside the grown holes, the splat elsewhere
                    weight = hole_weights(occlusion, cfg.hole_dilate_px, cfg.hole_feather_px)
                    right = merge_right_view(warped, enlarge(right, (height, width)), weight)
                sink(compose(left, right, mode).cpu().numpy())
                if observer is not None:
                    observer.on_frames(start, left, depth_vis, occlusion, right)
                if grid_sink is not None:
                    grid_sink(debug_grid(left, depth_vis, occlusion, warped))
                written += right.shape[0]
                timings["compose_encode"] = (
                    timings.get("compose_encode", 0.0) + time.perf_counter() - composed_at
                )
        inpaint_progress.finish()
        total = time.perf_counter() - started
        timings["splat"] = stereo.splat_seconds
        timings["inpainting"] = total - stereo.splat_seconds - timings.get("compose_encode", 0.0)
        if written != num_frames:
            raise RuntimeError(f"produced {written} frames for a {num_frames}-frame clip")
        return StereoResult(num_frames=written, width=out_w, height=out_h, timings=timings)

    def depth_pass(
        self,
        open_frames: OpenFrames,
        *,
        num_frames: int,
        width: int,
        height: int,
        progress: Progress | None = None,
        check: Callable[[], None] | None = None,
    ) -> torch.Tensor:
        """Stage 1 alone: the clip's raw (unnormalised) depth, (T, 1, h, w) float32 on the CPU at
        the depth stage's processing size. ``open_frames()`` is called once; ``check``: see ``run``."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        cfg = self.config
        report = progress or (lambda stage, done, total: None)
        size = processing_size(height, width, cfg.depth_max_res)
        source = SequentialFrames(
            self._frames(open_frames), num_frames, lambda c: resize_frames(self._to_tensor(c), size)
        )
        depth_progress = StageProgress(
            report, "depth", num_frames, depth_increments(num_frames, cfg), check=check
        )
        with depth_progress.watching(self.depth.unet, *_decoders(self.depth)):
            depth_chunks = [
                chunk
                for _, chunk in self.depth.iter_depth(
                    source,
                    num_inference_steps=cfg.depth_steps,
                    guidance_scale=cfg.depth_guidance,
                    window_size=cfg.depth_window,
                    overlap=cfg.depth_overlap,
                    noise_aug_strength=cfg.noise_aug_strength,
                    decode_chunk_size=cfg.depth_decode_chunk,
                    generator=self._generator(cfg.seed),
                )
            ]
        depth_progress.finish()
        return torch.cat(depth_chunks)  # (T, 1, h, w) float32, CPU


def common_scale(
    raw: torch.Tensor,
    depth_map: tuple[float, float] | None = None,
    depth_range: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, float, float]:
    """The clip's raw depth (T, 1, h, w) on the common scale of a long video, and the (low, high)
    that normalise it (``run``'s ``depth_map`` and ``depth_range``): scale * raw + shift, and
    the given range, which must be wide enough for float32 (``bounds.check_depth_range``), or
    the clip's own min and max (the reference)."""
    if depth_map is not None and tuple(depth_map) != (1.0, 0.0):
        scale, shift = depth_map
        raw = raw * scale + shift
    if depth_range is None:
        return raw, float(raw.min()), float(raw.max())
    low, high = float(depth_range[0]), float(depth_range[1])
    check_depth_range(low, high)
    return raw, low, high


def normalise(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(raw - low) / (high - low), not clamped (values outside the range fall outside [0, 1]).
    A range too narrow for float32 (``bounds.wide_enough``; a clip whose depth is flat) gives
    zeros, where the reference's min-max normalisation gives NaN."""
    if not wide_enough(low, high):
        return torch.zeros_like(raw)
    return (raw - low) / (high - low)


def depth_windows(num_frames: int, window: int, overlap: int) -> list[tuple[int, int, int]]:
    """The depth stage's windows as ``iter_depth`` walks them: (start, end, frames it finishes)."""
    if num_frames <= window:
        return [(0, num_frames, num_frames)]
    windows: list[tuple[int, int, int]] = []
    start = 0
    while start < num_frames - overlap:
        end = min(start + window, num_frames)
        windows.append((start, end, end - (start + overlap) if windows else end))
        start += window - overlap
    return windows


def depth_increments(num_frames: int, cfg: StereoConfig) -> list[float]:
    """Frames finished per depth-UNet call: each window's new frames spread over its calls."""
    calls = cfg.depth_steps * (2 if cfg.depth_guidance > 1.0 else 1)
    windows = depth_windows(num_frames, cfg.depth_window, cfg.depth_overlap)
    return [new / calls for _, _, new in windows for _ in range(calls)]


def inpainting_increments(num_frames: int, cfg: StereoConfig) -> list[float]:
    """Frames finished per inpainting-UNet call: each chunk's kept frames over steps x tiles."""
    calls = cfg.inpaint_steps * cfg.tile_num**2  # the guidance pair is one batched call
    chunks = inpainting_stage.plan_chunks(num_frames, cfg.frames_chunk, cfg.inpaint_overlap)
    return [(c.end - c.start - c.reused) / calls for c in chunks for _ in range(calls)]


class StageProgress:
    """Progress of one stage in frames, from its UNet's calls (a forward hook, no argument threaded
    through the stage; the same hook runs ``check``): each call advances the count by its share of
    the frames its window or chunk finishes, and every whole frame crossed is reported, from 0 at
    the stage's start (so a bar's clock is the stage's) to ``total`` at its end."""

    def __init__(
        self,
        report: Progress,
        stage: str,
        total: int,
        increments: list[float],
        check: Callable[[], None] | None = None,
    ) -> None:
        self.report, self.stage, self.total, self.check = report, stage, total, check
        self._increments = iter(increments)
        self._done, self._reported = 0.0, 0
        report(stage, 0, total)

    @contextmanager
    def watching(self, unet: torch.nn.Module, *checked: torch.nn.Module) -> Iterator[None]:
        """Hooks for the stage: progress and ``check`` after every ``unet`` call, ``check`` alone
        before every call of the ``checked`` modules (the VAE decoder, which runs after the last
        UNet call of a window or chunk: at 1080p a chunk's decode takes seconds)."""
        handles = [unet.register_forward_hook(self._after_call)]
        if self.check is not None:
            check = self.check
            handles += [module.register_forward_pre_hook(lambda *_: check()) for module in checked]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _after_call(self, *_: Any) -> None:
        if self.check is not None:
            self.check()  # e.g. the job's deadline: raising here stops the stage after this call
        self._done += next(self._increments, 0.0)
        self._emit(min(int(self._done + 1e-6), self.total))

    def _emit(self, upto: int) -> None:
        while self._reported < upto:
            self._reported += 1
            self.report(self.stage, self._reported, self.total)

    def finish(self) -> None:
        self._emit(self.total)


def _decoders(stage: Any) -> list[torch.nn.Module]:
    """The VAE decoder of a diffusion stage (none for a stand-in depth stage without a VAE)."""
    vae = getattr(stage, "vae", None)
    return [vae.decoder] if vae is not None else []


class _StereoSource:
    """The inpainting stage's view of the clip: warped right view and occlusion for a frame range,
    computed on request from the decoded left view and the clip's depth."""

    def __init__(
        self,
        pipeline: StereoPipeline,
        chunks: HostChunks,
        num_frames: int,
        raw_depth: torch.Tensor,
        depth_range: tuple[float, float],
        size: tuple[int, int],
        work_size: tuple[int, int],
    ) -> None:
        self.pipeline = pipeline
        self.frames = SequentialFrames(chunks, num_frames, pipeline._to_tensor)
        self.raw_depth, self.depth_range, self.size = raw_depth, depth_range, size
        self.work_size = work_size  # what the inpainting sees (``merge.working_size``)
        self.splat_seconds = 0.0
        self._last: tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]:
        """Warped view and occlusion of a frame range at the working size; the full-size ones
        stay here for ``kept``."""
        started = time.perf_counter()
        left = self.frames[index]
        start = index.start or 0
        cfg = self.pipeline.config
        low, high = self.depth_range
        warped_parts, occlusion_parts, depth_parts = [], [], []
        for i in range(0, left.shape[0], cfg.splat_batch):
            raw = self.raw_depth[start + i : start + i + left[i : i + cfg.splat_batch].shape[0]]
            # Normalised over the whole clip, then resized to the source size (reference §1.6).
            depth = normalise(raw.to(left.device), low, high)
            depth = depth_stage.resize_depth(depth, self.size).clamp(0, 1)
            warped, occlusion = forward_splat(
                left[i : i + cfg.splat_batch], disparity_from_depth(depth, cfg.max_disp)
            )
            warped_parts.append(warped.clamp(0, 1))
            occlusion_parts.append(occlusion)
            depth_parts.append(depth)
        warped, occlusion = torch.cat(warped_parts), torch.cat(occlusion_parts)
        self._last = (start, left, torch.cat(depth_parts), occlusion, warped)
        if left.device.type == "cuda":
            torch.cuda.synchronize()
        self.splat_seconds += time.perf_counter() - started
        return shrink(warped, occlusion, self.work_size)

    def kept(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left view, depth, occlusion and warped view of frames [start, start + count), which are
        the tail of the last range served."""
        assert self._last is not None
        first, left, depth, occlusion, warped = self._last
        offset = start - first
        pick = slice(offset, offset + count)
        return left[pick], depth[pick], occlusion[pick], warped[pick]


def inferno(values: torch.Tensor) -> torch.Tensor:
    """(T, 1, H, W) in [0, 1] -> (T, 3, H, W) through matplotlib's 256-entry "inferno" table, index
    floor(255 * v) as the reference's visualisation. Needs matplotlib (an optional dependency)."""
    try:
        from matplotlib import colormaps
    except ImportError as err:  # pragma: no cover - exercised only without matplotlib
        raise RuntimeError("the debug grid needs matplotlib: pip install matplotlib") from err
    table = torch.tensor(
        colormaps["inferno"](np.arange(256))[:, :3], dtype=torch.float32, device=values.device
    )
    index = (values[:, 0].clamp(0, 1) * 255).long()
    return table[index].permute(0, 3, 1, 2)


def debug_grid(
    left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor, warped: torch.Tensor
) -> np.ndarray:
    """The reference's 2x2 stage-1 grid: [left | inferno depth] over [occlusion mask | warped right],
    (T, 2H, 2W, 3) uint8."""
    top = torch.cat([left, inferno(depth)], dim=3)
    bottom = torch.cat([occlusion.expand(-1, 3, -1, -1), warped], dim=3)
    return to_uint8(torch.cat([top, bottom], dim=2)).permute(0, 2, 3, 1).cpu().numpy()
