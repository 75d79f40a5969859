"""StereoPipeline: left video -> depth -> disparity -> forward splat -> inpainting -> stereo frames.

No I/O here: frames come from a callable that opens a fresh iterator of uint8 RGB chunks (the video
decoder, in practice) and composed frames go to a sink callable (the video encoder). Host memory is
bounded by a window or chunk of frames, not by the clip:

1. Depth pass: the frames are read once, resized to the depth stage's processing size and given to
   it window by window (the stage the config's ``depth_model`` names, ``stages.registry``); only
   the raw depth at that size (one float per depth pixel) is kept for the clip, because
   normalisation is over the whole video (reference §1.6).
2. Stereo pass: the frames are read again in the inpainting stage's chunk order; each requested
   range is normalised, resized to the source size, turned into disparity and splatted (in batches
   of 10, as the reference), the holes are inpainted chunk by chunk (the stage the config's
   ``inpainting_model`` names), and the kept frames are composed and handed to the sink.

Two decode passes trade a cheap second decode for not holding the clip (reference notes §8.2).
Which models run is the stages' business: nothing here names one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stereocrafter.bounds import DEFAULT_MODE, check_mode
from stereocrafter.catalog import DEFAULT_DEPTH_MODEL, DEFAULT_INPAINTING_MODEL
from stereocrafter.config import StereoConfig
from stereocrafter.errors import PresetNotServedError
from stereocrafter.media.streams import prefetch
from stereocrafter.media.yuv import YuvChunk, rgb_to_yuv420p, yuv420p_to_rgb
from stereocrafter.pipeline.frames import SequentialFrames
from stereocrafter.pipeline.progress import StageProgress, no_progress
from stereocrafter.pipeline.types import NO_HOOKS, HostChunks, OpenFrames, RunHooks, Sink, StereoResult
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.stages.base import DepthStage, InpaintingStage
from stereocrafter.stages.registry import wrap_depth, wrap_inpainting
from stereocrafter.stereo.compose import compose, output_size
from stereocrafter.stereo.depthmap import AlignedDepth, common_scale, normalise, resize_depth
from stereocrafter.stereo.grid import debug_grid
from stereocrafter.stereo.merge import enlarge, hole_weights, merge_right_view, shrink, working_size
from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


class StereoPipeline:
    """Both stages on one device. ``depth`` and ``inpainting``: a loaded stage or model pipeline,
    or a sequence of them (one per model served, ``stages.registry``); a run uses the ones its
    config names. ``config`` is the default of ``run``'s own ``config``; ``tiny`` says that the
    weights are the random test weights (``stages.components.is_tiny``), known once when the
    pipeline is loaded and shown in every answer and report; ``presets``: the presets this
    pipeline serves (``STEREOCRAFTER_PRESETS``), which ``check_inputs`` holds a run's config to;
    ``weights``: model -> {weight file -> SHA-256} of what was loaded."""

    def __init__(
        self,
        depth: Any,
        inpainting: Any,
        config: StereoConfig | None = None,
        *,
        tiny: bool = False,
        presets: Sequence[str] = PRESET_NAMES,
        unavailable: Mapping[str, Any] | None = None,
        weights: Mapping[str, Mapping[str, str]] | None = None,
    ) -> None:
        self.depth_stages: dict[str, DepthStage] = {s.name: s for s in map(wrap_depth, _listed(depth))}
        self.inpainting_stages: dict[str, InpaintingStage] = {
            s.name: s for s in map(wrap_inpainting, _listed(inpainting))
        }
        self.config = config or StereoConfig()
        self.tiny = tiny
        self.presets = tuple(presets)
        # served presets that cannot run here (``pipeline.loading.Unavailable``: a model's weights
        # missing or corrupt); a run of one is a 503 naming the model
        self.unavailable = dict(unavailable or {})
        # every loaded model's weight files with their SHA-256, as verified at load
        # (``pipeline.loading``; empty for a pipeline built from models in memory): what a record of
        # an output names (``jobs.provenance``)
        self.weights = {model: dict(files) for model, files in (weights or {}).items()}
        self.device = next(iter(self.inpainting_stages.values())).device

    @property
    def provenance(self) -> dict[str, Any]:
        """What this pipeline adds to a record of its outputs: its device and its weights' digests."""
        return {"device": self.device.type, "weights": self.weights}

    @property
    def ready_presets(self) -> list[str]:
        """The served presets that can run here."""
        return [p for p in self.presets if p not in self.unavailable]

    @property
    def stages(self) -> list[DepthStage | InpaintingStage]:
        """Every loaded stage, depth first (``pipeline.compile``)."""
        return [*self.depth_stages.values(), *self.inpainting_stages.values()]

    @property
    def depth(self) -> Any:
        """The default depth model's pipeline when it is loaded, else None (tests)."""
        stage = self.depth_stages.get(DEFAULT_DEPTH_MODEL)
        return stage.pipeline if stage is not None else None

    @property
    def inpainting(self) -> Any:
        """The default inpainting model's pipeline when it is loaded, else None (tests)."""
        stage = self.inpainting_stages.get(DEFAULT_INPAINTING_MODEL)
        return stage.pipeline if stage is not None else None

    def check_inputs(self, config: StereoConfig, num_frames: int, mode: str | None = None) -> None:
        """The one check of a run's inputs below the edge, as a diffusers pipeline's: ``mode``
        (``bounds.MODES``; None for the depth pass), ``num_frames`` >= 1, and ``config`` runnable
        here (``PresetNotServedError``, 400: its preset is not among those served, or its models
        were not loaded)."""
        if mode is not None:
            check_mode(mode)
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if config.preset not in self.presets:  # its models were not loaded here
            raise PresetNotServedError(
                f"this endpoint serves the presets {', '.join(self.presets)} (STEREOCRAFTER_PRESETS), "
                f"not {config.preset}"
            )
        if config.preset in self.unavailable:
            raise self.unavailable[config.preset].error(self.ready_presets)
        for kind, model, loaded in (
            ("depth", config.depth_model, self.depth_stages),
            ("inpainting", config.inpainting_model, self.inpainting_stages),
        ):
            if model not in loaded:
                raise PresetNotServedError(
                    f"the {kind} model {model} is not loaded here (loaded: {', '.join(loaded) or 'none'})"
                )

    def _host_tensor(self, chunk: np.ndarray | YuvChunk) -> torch.Tensor | YuvChunk:
        """(t, H, W, 3) uint8 numpy (or a ``YuvChunk``'s planes) -> the same as a torch tensor, in
        page-locked memory when the device is a GPU (so the copy to it can be asynchronous). Runs
        in the decoding thread."""
        if isinstance(chunk, YuvChunk):
            return YuvChunk(self._host_tensor(chunk.planes), chunk.bt709, chunk.full)
        tensor = torch.from_numpy(np.ascontiguousarray(chunk))
        return tensor.pin_memory() if self.device.type == "cuda" else tensor

    def _to_tensor(self, chunk: np.ndarray | torch.Tensor | YuvChunk) -> torch.Tensor:
        """(t, H, W, 3) uint8 (or a ``YuvChunk``, converted on the device) -> (t, 3, H, W) float32
        in [0, 1] on the device."""
        if isinstance(chunk, YuvChunk):
            return yuv420p_to_rgb(chunk, self.device)
        host = chunk if isinstance(chunk, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(chunk))
        return host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float() / 255.0

    def _frames(self, open_frames: OpenFrames) -> Iterator[Any]:
        """One pass over the decoded frames, decoded ahead in a thread (``streams.prefetch``)."""
        chunks: Iterator[Any] = open_frames()
        return prefetch(chunks, self._host_tensor)

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
        mode: str = DEFAULT_MODE,
        config: StereoConfig | None = None,
        hooks: RunHooks = NO_HOOKS,
        depth: AlignedDepth | None = None,
    ) -> StereoResult:
        """Convert one clip. ``open_frames()`` is called twice (one pass per stage) and must yield
        the same ``num_frames`` frames of ``width`` x ``height`` each time (once, when ``depth``
        holds a stored raw depth).

        ``mode``: the stereo layout (``bounds.MODES``). ``config``: this run's knobs (default: the
        pipeline's), as diffusers pipelines take theirs per call; nothing is rebuilt per job.
        ``hooks``: see ``RunHooks``. ``depth``: see ``AlignedDepth`` (long videos); None is the
        reference's run.
        """
        cfg = config or self.config
        self.check_inputs(cfg, num_frames, mode)
        aligned = depth or AlignedDepth()
        stop, observer, grid_sink = hooks.stop, hooks.observer, hooks.grid_sink
        timings: dict[str, float] = {}
        report = hooks.progress or no_progress

        # 1. Depth at the processing resolution, one window at a time (or the stored one).
        if aligned.raw is None:
            started = time.perf_counter()
            raw_depth = self._depth_pass(open_frames, num_frames, width, height, cfg, hooks)
            timings["depth"] = time.perf_counter() - started
        else:
            raw_depth = aligned.raw
            if raw_depth.ndim != 4 or raw_depth.shape[:2] != (num_frames, 1):
                raise ValueError(
                    f"the stored depth is {tuple(raw_depth.shape)}; this clip needs ({num_frames}, 1, h, w)"
                )
        raw_depth, low, high = common_scale(raw_depth, aligned)

        # 2. Splat and inpaint chunk by chunk; compose and hand over the kept frames.
        inpaint = self.inpainting_stages[cfg.inpainting_model]
        chunks = inpaint.plan(num_frames, cfg)
        if observer is not None:
            seams = [chunk.start + chunk.reused for chunk in chunks[1:]]  # first frame each later chunk keeps
            observer.on_start(num_frames=num_frames, width=width, height=height, config=cfg,
                              depth_range=(low, high), seams=seams)  # fmt: skip
        work = working_size(height, width, cfg.inpaint_max_res, cfg.inpaint_multiple)
        stereo = _StereoSource(
            self, cfg, self._frames(open_frames), num_frames, raw_depth, (low, high), (height, width), work,
            with_disparity=getattr(inpaint, "needs_disparity", False),
        )  # fmt: skip
        started = time.perf_counter()
        out_w, out_h = output_size(mode, width, height)
        written = 0

        if stop is not None:
            stop.check()
        inpaint_progress = StageProgress(
            report, "inpainting", num_frames, inpaint.increments(chunks, cfg), stop=stop
        )
        with inpaint_progress.watching(inpaint.watched, *inpaint.checked):
            for start, right in inpaint.iter_inpaint(stereo, cfg, self._generator(cfg.seed)):
                composed_at = time.perf_counter()
                left, depth_vis, occlusion, warped = stereo.kept(start, right.shape[0])
                if cfg.holes_only:  # the inpaint only inside the grown holes, the splat elsewhere
                    weight = hole_weights(occlusion, cfg.hole_dilate_px, cfg.hole_feather_px)
                    right = merge_right_view(warped, enlarge(right, (height, width)), weight)
                composed = compose(left, right, mode)
                if getattr(sink, "takes_yuv420p", False):  # the encoder's colour conversion here too
                    composed = rgb_to_yuv420p(composed)
                sink(composed.cpu().numpy())
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
        ``hooks`` (its progress and stop check): see ``run``."""
        cfg = config or self.config
        self.check_inputs(cfg, num_frames)
        return self._depth_pass(open_frames, num_frames, width, height, cfg, hooks)

    def _depth_pass(
        self,
        open_frames: OpenFrames,
        num_frames: int,
        width: int,
        height: int,
        cfg: StereoConfig,
        hooks: RunHooks,
    ) -> torch.Tensor:
        stage = self.depth_stages[cfg.depth_model]
        report = hooks.progress or no_progress
        size = stage.processing_size(height, width, cfg)
        source = SequentialFrames(
            self._frames(open_frames),
            num_frames,
            lambda c: stage.resize(self._to_tensor(c), size),
            (height, width),
        )
        depth_progress = StageProgress(
            report, "depth", num_frames, stage.increments(num_frames, cfg), stop=hooks.stop
        )
        with depth_progress.watching(stage.watched, *stage.checked):
            depth_chunks = [chunk for _, chunk in stage.iter_depth(source, cfg, self._generator(cfg.seed))]
        depth_progress.finish()
        return torch.cat(depth_chunks)  # (T, 1, h, w) float32, CPU


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
        *,
        with_disparity: bool = False,
    ) -> None:
        self.pipeline, self.config = pipeline, config
        # The right view's own disparity (splatted with the colours), for stages that tell the
        # background side of a hole from its foreground side (``disparity``).
        self.with_disparity = with_disparity
        self._disparity: tuple[int, torch.Tensor] | None = None
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
        warped_parts, occlusion_parts, depth_parts, disparity_parts = [], [], [], []
        for i in range(0, left.shape[0], cfg.splat_batch):
            raw = self.raw_depth[start + i : start + i + left[i : i + cfg.splat_batch].shape[0]]
            # Normalised over the whole clip, then resized to the source size (reference §1.6).
            depth = normalise(raw.to(left.device), low, high)
            depth = resize_depth(depth, self.size).clamp(0, 1)
            disparity = disparity_from_depth(depth, cfg.max_disp, in_range=True)  # clamped above
            view = left[i : i + cfg.splat_batch]
            # with the disparity: one splat of colours and disparity, the same weights
            warped, occlusion = forward_splat(view, disparity, carry_disparity=self.with_disparity)
            if self.with_disparity:
                disparity_parts.append(warped[:, 3:])
                warped = warped[:, :3]
            # No clamp: for a view in [0, 1] the splat is already (forward_splat's Returns).
            warped_parts.append(warped)
            occlusion_parts.append(occlusion)
            depth_parts.append(depth)
        warped, occlusion = torch.cat(warped_parts), torch.cat(occlusion_parts)
        self._last = (start, left, torch.cat(depth_parts), occlusion, warped)
        if left.device.type == "cuda":
            torch.cuda.synchronize()
        if self.with_disparity:  # in pixels of the working size; nearest: no mix with the holes' zeros
            right_disparity = torch.cat(disparity_parts) * (self.work_size[1] / self.size[1])
            if tuple(right_disparity.shape[-2:]) != tuple(self.work_size):
                right_disparity = F.interpolate(right_disparity, size=self.work_size, mode="nearest")
            self._disparity = (start, right_disparity)
        self.splat_seconds += time.perf_counter() - started
        return shrink(warped, occlusion, self.work_size)

    def disparity(self, index: slice) -> torch.Tensor:
        """The splatted right view's disparity (pixels of the working size, larger = nearer; 0 in
        holes) of the range last served (``__getitem__``, with ``with_disparity``)."""
        if self._disparity is None:
            raise RuntimeError("disparity() before a range was served, or without with_disparity")
        first, values = self._disparity
        offset = (index.start or 0) - first
        return values[offset : offset + (index.stop - (index.start or 0))]

    def kept(self, start: int, count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left view, depth, occlusion and warped view of frames [start, start + count), which are
        the tail of the last range served."""
        assert self._last is not None
        first, left, depth, occlusion, warped = self._last
        offset = start - first
        pick = slice(offset, offset + count)
        return left[pick], depth[pick], occlusion[pick], warped[pick]
