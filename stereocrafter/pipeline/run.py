"""StereoPipeline: left video -> depth -> disparity -> forward splat -> inpainting -> stereo frames.

No I/O here: frames come from a callable that opens a fresh iterator of uint8 RGB chunks (the video
decoder, in practice) and composed frames go to a sink callable (the video encoder). Host memory is
bounded by a window or chunk of frames, not by the clip:

1. Depth pass: the frames are read once, resized to the depth model's processing size and given to
   it window by window (``depth_stages``: DepthCrafter or Video Depth Anything, as the config's
   ``depth_model`` says); only the raw depth at that size (one float per depth pixel) is kept for
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
from typing import Any

import numpy as np
import torch

from stereocrafter.bounds import check_depth_range, wide_enough
from stereocrafter.config import (
    NO_HOOKS,
    AlignedDepth,
    FrameChunks,
    HostChunks,
    Observer,
    OpenFrames,
    Progress,
    RunHooks,
    Sink,
    StereoConfig,
    StereoResult,
)
from stereocrafter.errors import PresetNotServedError
from stereocrafter.media.streams import prefetch
from stereocrafter.models import depth as depth_stage
from stereocrafter.models import inpainting as inpainting_stage
from stereocrafter.models.inpainting import StereoInpaintingPipeline
from stereocrafter.pipeline.progress import StageProgress, decoders, inpainting_increments, no_progress
from stereocrafter.stages.depth import DepthStage, wrap
from stereocrafter.stereo.compose import check_mode, compose, output_size
from stereocrafter.stereo.grid import debug_grid
from stereocrafter.stereo.merge import enlarge, hole_weights, merge_right_view, shrink, working_size
from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat

# What a run takes is declared in ``config``; callers import it from here too.
__all__ = [
    "NO_HOOKS",
    "AlignedDepth",
    "FrameChunks",
    "Observer",
    "OpenFrames",
    "Progress",
    "RunHooks",
    "SequentialFrames",
    "Sink",
    "StereoConfig",
    "StereoPipeline",
    "StereoResult",
    "common_scale",
    "normalise",
]


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
    """Both stages on one device. ``depth``: the loaded depth pipeline, or a sequence of them (one
    per depth model served: ``DepthCrafterPipeline``, ``VdaDepthPipeline``); a run uses the one its
    config's ``depth_model`` names. ``config`` is the default of ``run``'s own ``config``; ``tiny``
    says that the weights are the random test weights (``loading.is_tiny``), known once when the
    pipeline is loaded and shown in every answer and report."""

    def __init__(
        self,
        depth: Any,
        inpainting: StereoInpaintingPipeline,
        config: StereoConfig | None = None,
        *,
        tiny: bool = False,
    ) -> None:
        pipelines = list(depth) if isinstance(depth, list | tuple) else [depth]
        self.depth_stages: dict[str, DepthStage] = {stage.model: stage for stage in map(wrap, pipelines)}
        self.inpainting = inpainting
        self.config = config or StereoConfig()
        self.tiny = tiny
        self.device = inpainting._execution_device

    @property
    def depth(self) -> Any:
        """DepthCrafter's pipeline when it is loaded, else None (tests, ``loading.compile_unets``)."""
        stage = self.depth_stages.get("depthcrafter")
        return stage.pipeline if stage is not None else None

    def depth_stage(self, config: StereoConfig) -> DepthStage:
        """The loaded stage of ``config.depth_model``; ``PresetNotServedError`` (400) when this
        pipeline was loaded without it (an endpoint serving other presets)."""
        stage = self.depth_stages.get(config.depth_model)
        if stage is None:
            raise PresetNotServedError(
                f"the depth model {config.depth_model} is not loaded here "
                f"(loaded: {', '.join(self.depth_stages) or 'none'})"
            )
        return stage

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
        config: StereoConfig | None = None,
        hooks: RunHooks = NO_HOOKS,
        depth: AlignedDepth | None = None,
    ) -> StereoResult:
        """Convert one clip. ``open_frames()`` is called twice (one pass per stage) and must yield
        the same ``num_frames`` frames of ``width`` x ``height`` each time (once, when ``depth``
        holds a stored raw depth).

        ``config``: this run's knobs (default: the pipeline's), as diffusers pipelines take theirs
        per call; nothing is rebuilt per job. ``hooks``: see ``RunHooks``. ``depth``: see
        ``AlignedDepth`` (long videos); None is the reference's run.
        """
        mode = check_mode(mode)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        cfg = config or self.config
        aligned = depth or AlignedDepth()
        check, observer, grid_sink = hooks.check, hooks.observer, hooks.grid_sink
        timings: dict[str, float] = {}
        report = hooks.progress or no_progress

        # 1. Depth at the processing resolution, one window at a time (or the stored one).
        if aligned.raw is None:
            started = time.perf_counter()
            raw_depth = self.depth_pass(open_frames, num_frames=num_frames, width=width, height=height,
                                        config=cfg, hooks=hooks)  # fmt: skip
            timings["depth"] = time.perf_counter() - started
        else:
            raw_depth = aligned.raw
            if raw_depth.ndim != 4 or raw_depth.shape[:2] != (num_frames, 1):
                raise ValueError(
                    f"the stored depth is {tuple(raw_depth.shape)}; this clip needs ({num_frames}, 1, h, w)"
                )
        raw_depth, low, high = common_scale(raw_depth, aligned)

        # 2. Splat and inpaint chunk by chunk; compose and hand over the kept frames.
        chunks = inpainting_stage.plan_chunks(num_frames, cfg.frames_chunk, cfg.inpaint_overlap)
        if observer is not None:
            seams = [chunk.start + chunk.reused for chunk in chunks[1:]]  # first frame each later chunk keeps
            observer.on_start(num_frames=num_frames, width=width, height=height, config=cfg,
                              depth_range=(low, high), seams=seams)  # fmt: skip
        work = working_size(height, width, cfg.inpaint_max_res, cfg.inpaint_multiple)
        stereo = _StereoSource(
            self, cfg, self._frames(open_frames), num_frames, raw_depth, (low, high), (height, width), work
        )
        started = time.perf_counter()
        out_w, out_h = output_size(mode, width, height)
        written = 0

        if check is not None:
            check()
        inpaint_progress = StageProgress(
            report, "inpainting", num_frames, inpainting_increments(chunks, cfg), check=check
        )
        with inpaint_progress.watching(self.inpainting.unet, *decoders(self.inpainting)):
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
        config: StereoConfig | None = None,
        hooks: RunHooks = NO_HOOKS,
    ) -> torch.Tensor:
        """Stage 1 alone: the clip's raw (unnormalised) depth, (T, 1, h, w) float32 on the CPU at
        the depth stage's processing size. ``open_frames()`` is called once; ``config`` and
        ``hooks`` (its progress and check): see ``run``."""
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        cfg = config or self.config
        stage = self.depth_stage(cfg)
        report = hooks.progress or no_progress
        size = stage.processing_size(height, width, cfg)
        source = SequentialFrames(
            self._frames(open_frames), num_frames, lambda c: stage.resize(self._to_tensor(c), size)
        )
        depth_progress = StageProgress(
            report, "depth", num_frames, stage.increments(num_frames, cfg), check=hooks.check
        )
        with depth_progress.watching(stage.watched, *stage.checked):
            depth_chunks = [chunk for _, chunk in stage.iter_depth(source, cfg, self._generator(cfg.seed))]
        depth_progress.finish()
        return torch.cat(depth_chunks)  # (T, 1, h, w) float32, CPU


def common_scale(raw: torch.Tensor, aligned: AlignedDepth) -> tuple[torch.Tensor, float, float]:
    """The clip's raw depth (T, 1, h, w) on the common scale of a long video, and the (low, high)
    that normalise it (``AlignedDepth``'s map and range): scale * raw + shift, and the given range,
    which must be wide enough for float32 (``bounds.check_depth_range``), or the clip's own min
    and max (the reference). ``aligned.raw`` is not read: ``raw`` is the depth in hand."""
    if aligned.mapped:
        raw = raw * aligned.scale + aligned.shift
    if aligned.range is None:
        return raw, float(raw.min()), float(raw.max())
    low, high = float(aligned.range[0]), float(aligned.range[1])
    check_depth_range(low, high)
    return raw, low, high


def normalise(raw: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """(raw - low) / (high - low), not clamped (values outside the range fall outside [0, 1]).
    A range too narrow for float32 (``bounds.wide_enough``; a clip whose depth is flat) gives
    zeros, where the reference's min-max normalisation gives NaN."""
    if not wide_enough(low, high):
        return torch.zeros_like(raw)
    return (raw - low) / (high - low)


class _StereoSource:
    """The inpainting stage's view of the clip: warped right view and occlusion for a frame range,
    computed on request from the decoded left view and the clip's depth."""

    def __init__(
        self,
        pipeline: StereoPipeline,
        config: StereoConfig,
        chunks: HostChunks,
        num_frames: int,
        raw_depth: torch.Tensor,
        depth_range: tuple[float, float],
        size: tuple[int, int],
        work_size: tuple[int, int],
    ) -> None:
        self.pipeline, self.config = pipeline, config
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
        cfg = self.config
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
