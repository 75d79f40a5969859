"""The host side of a conversion, timed with the models taken out: can the host feed a fast GPU?

Runs the real ``StereoPipeline`` under ``convert_file`` (the `turbo` preset, sbs, the quality
report on) with both model stages replaced by instant stand-ins of the right shapes and dtypes: a
smooth synthetic depth at VDA's processing size, and an inpainting that returns its input (the
warped view at the working size). Everything else is real: decoding a real H.264 file (PyAV),
resizing, splatting, shrinking and merging, composing, the report, and the libx264 encode to a real
file. Prints:

- host milliseconds per frame for each part, each timed alone on the same clip (one thread: what
  the part costs, not what it costs inside the overlapped run);
- frames per second end to end, with the decode and encode threads on (as the service runs) and
  off (everything in one thread), and the report on and off;
- a GPU host's own share: decode, the side-by-side frame, the colour conversion and libx264 with
  the GPU's work taken as zero (splat, merge, compose and the report run on the GPU there), in
  frames per second and CPU milliseconds per frame, and what that CPU cost allows on 4 and 8
  vCPUs (CPU time divided among the cores: an estimate, an upper bound); and with NVENC, where
  the colour conversion runs on the device as well (``media.yuv``): decode, the planes' copy and
  their wrapping, the host's whole share.

    python -m bench.host_pipeline                # 1920x1080 and 1024x576, 48 frames: ~10 min on 2 vCPU
    python -m bench.host_pipeline --smoke        # 320x192, 8 frames: checks the script itself
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

import stereocrafter.jobs.local as convert_module
import stereocrafter.pipeline.run as pipeline_module
from stereocrafter.config import StereoConfig
from stereocrafter.jobs.local import convert_file
from stereocrafter.jobs.report import QualityReport
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.encoders import LIBX264
from stereocrafter.media.streams import BackgroundSink, prefetch
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.media.yuv import rgb_to_yuv420p
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.stages.stereocrafter import StereoCrafterStage
from stereocrafter.stages.vda import VdaStage
from stereocrafter.stereo.compose import compose
from stereocrafter.stereo.depthmap import normalise, resize_depth
from stereocrafter.stereo.merge import enlarge, hole_weights, merge_right_view, shrink, working_size
from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat

CHUNK = 16  # decoded frames per chunk, as convert_file decodes


class InstantDepth:
    """A depth stage (``stages.base.DepthStage``) in VDA-S's place: its sizes, a smooth depth."""

    name = VdaStage.name
    processing_size = staticmethod(VdaStage.processing_size)
    resize = staticmethod(VdaStage.resize)
    warmup_calls = staticmethod(VdaStage.warmup_calls)

    def __init__(self) -> None:
        self.pipeline, self.device = None, torch.device("cpu")
        self.watched = torch.nn.Identity()
        self.checked: list[torch.nn.Module] = []

    @staticmethod
    def increments(num_frames: int, config: StereoConfig) -> list[float]:
        return []

    def iter_depth(self, frames: Any, *_: Any) -> Iterator[tuple[int, torch.Tensor]]:
        for start in range(0, len(frames), 32):
            chunk = frames[start : start + 32]  # decoded and resized: real host work
            yield start, smooth_depth(chunk.shape[0], *chunk.shape[-2:], start)


class EchoInpainting:
    """An inpainting stage (``stages.base.InpaintingStage``) in StereoCrafter's place: its chunks,
    returning the warped view it is given (no model)."""

    name = StereoCrafterStage.name
    plan = staticmethod(StereoCrafterStage.plan)

    def __init__(self) -> None:
        self.pipeline, self.device = None, torch.device("cpu")
        self.watched = torch.nn.Identity()
        self.checked: list[torch.nn.Module] = []

    @staticmethod
    def warmup_calls(config: StereoConfig, frame_size: tuple[int, int]) -> list[Any]:
        return []

    @staticmethod
    def increments(chunks: list[Any], config: StereoConfig) -> list[float]:
        return []

    def iter_inpaint(self, source: Any, config: StereoConfig, generator: Any) -> Iterator[Any]:
        for chunk in self.plan(len(source), config):
            warped, _ = source[chunk.start : chunk.end]
            yield chunk.start + chunk.reused, warped[chunk.reused :]


def smooth_depth(frames: int, height: int, width: int, start: int = 0) -> torch.Tensor:
    """(frames, 1, h, w) in [0, 1]: a slanted floor and a disc drifting across."""
    y = torch.linspace(0, 1, height).view(1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, width)
    t = (torch.arange(frames, dtype=torch.float32) + start).view(frames, 1, 1)
    disc = ((x - 0.3 - 0.005 * t) ** 2 + (y - 0.5) ** 2 < 0.04).float()
    return (0.3 + 0.3 * y + 0.4 * disc)[:, None].expand(frames, 1, height, width).contiguous()


def make_clip(path: Path, frames: int, width: int, height: int) -> Path:
    """A real H.264 clip (libx264, as a camera or an editor would hand one over)."""
    rng = np.random.default_rng(0)
    base = (rng.random((height // 8, width // 8, 3)) * 255).astype(np.uint8)
    texture = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    with VideoWriter(path, fps=24, width=width, height=height) as writer:
        for t in range(0, frames, CHUNK):
            n = min(CHUNK, frames - t)
            writer.write(np.stack([np.roll(texture, 4 * (t + i), axis=1) for i in range(n)]))
    return path


def per_frame_ms(call: Callable[[], Any], frames: int) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000 / frames


def parts(clip: Path, config: StereoConfig, tmp: Path) -> dict[str, float]:
    """Milliseconds per frame of each host part, alone, over the whole clip."""
    info = probe(clip)
    n, height, width = info.num_frames, info.height, info.width
    depth_size = VdaStage.processing_size(height, width, config)
    work = working_size(height, width, config.inpaint_max_res, config.inpaint_multiple)
    result: dict[str, float] = {}
    chunks: list[np.ndarray] = []
    result["decode (PyAV, RGB)"] = per_frame_ms(lambda: chunks.extend(iter_frames(clip, CHUNK)), n)
    tensors: list[torch.Tensor] = []

    def upload() -> None:
        for chunk in chunks:
            tensors.append(torch.from_numpy(chunk).permute(0, 3, 1, 2).float() / 255.0)

    result["to float tensors"] = per_frame_ms(upload, n)
    result["resize for depth (bicubic)"] = per_frame_ms(
        lambda: [VdaStage.resize(t, depth_size) for t in tensors], n
    )
    raw = smooth_depth(n, *depth_size)
    splats: list[tuple[torch.Tensor, ...]] = []

    def splat() -> None:
        start = 0
        for left in tensors:
            for i in range(0, left.shape[0], config.splat_batch):
                part = left[i : i + config.splat_batch]
                depth = normalise(raw[start + i : start + i + part.shape[0]], 0.0, 1.0)
                depth = resize_depth(depth, (height, width)).clamp(0, 1)
                warped, occlusion = forward_splat(part, disparity_from_depth(depth, config.max_disp))
                splats.append((part, depth, occlusion, warped.clamp(0, 1)))
            start += left.shape[0]

    result["depth resize + splat"] = per_frame_ms(splat, n)
    merged: list[torch.Tensor] = []

    def merge() -> None:
        for _, _, occlusion, warped in splats:
            small, _ = shrink(warped, occlusion, work)
            weight = hole_weights(occlusion, config.hole_dilate_px, config.hole_feather_px)
            merged.append(merge_right_view(warped, enlarge(small, (height, width)), weight))

    result["shrink + enlarge + merge"] = per_frame_ms(merge, n)
    composed: list[np.ndarray] = []

    def compose_all() -> None:
        for (left, _, _, _), right in zip(splats, merged, strict=True):
            composed.append(compose(left, right, "sbs").cpu().numpy())

    result["compose sbs (to uint8)"] = per_frame_ms(compose_all, n)

    def observe(thumbnails: int) -> None:  # a fresh report
        report = QualityReport(thumbnails=thumbnails)
        report.on_start(num_frames=n, width=width, height=height, config=config, depth_range=(0.0, 1.0),
                        seams=[])  # fmt: skip
        start = 0
        for (left, depth, occlusion, _), right in zip(splats, merged, strict=True):
            report.on_frames(start, left, depth, occlusion, right)
            start += left.shape[0]
        assert report.error is None, report.error

    # The best of three passes: a few ms a frame, where a shared VM's noise is of the same order.
    # Per frame without thumbnails, then the 4 thumbnails the service keeps, a fixed cost per clip
    # (4 frames' panels shrunk), spread over this clip's frames.
    steady = min(per_frame_ms(lambda: observe(0), n) for _ in range(3))
    with_thumbnails = min(per_frame_ms(lambda: observe(4), n) for _ in range(3))
    result["quality report"] = steady
    result[f"  its 4 thumbnails, over {n} frames"] = max(0.0, with_thumbnails - steady)

    def encode() -> None:
        with VideoWriter(tmp / "parts.mp4", fps=info.fps, width=2 * width, height=height) as writer:
            for frames in composed:
                writer.write(frames)

    result[f"encode sbs ({LIBX264.codec} {LIBX264.preset})"] = per_frame_ms(encode, n)
    result["  of which RGB -> YUV (swscale)"] = per_frame_ms(lambda: to_yuv(composed, info.fps), n)
    return result


def to_yuv(chunks: list[np.ndarray], fps: Any) -> None:
    """The writer's colour conversion alone (``VideoWriter``'s filter graph, no encoder): what
    stays on the host with NVENC too."""
    height, width = chunks[0].shape[1:3]
    writer = VideoWriter(Path(tempfile.gettempdir()) / "unused.mp4", fps=fps, width=width, height=height)
    graph = writer._yuv_graph()
    for chunk in chunks:
        for index, rgb in enumerate(chunk):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            graph.push(frame)
            graph.pull()


def device_yuv_host(clip: Path, *, threads: bool) -> tuple[float, float]:
    """Frames per second and CPU ms per frame of a GPU host's CPU when both colour conversions run
    on the device (``media.yuv``, NVENC): decode to the stream's own planes (PyAV,
    ``iter_frames(planes=True)``: no YUV -> RGB on the host), the output planes' copy from the
    device (here a copy of planes made beforehand: the device's work is not the host's) and their
    wrapping into frames for the encoder. The NVENC encode itself is the GPU's."""
    info = probe(clip)
    first = next(iter_frames(clip, CHUNK))
    planes = rgb_to_yuv420p(torch.from_numpy(np.concatenate([first, first], axis=2))).numpy()

    def hand_over(_: Any) -> None:
        for plane in planes.copy():  # the device -> host copy of one chunk's planes
            av.VideoFrame.from_ndarray(plane, format="yuv420p")

    started, cpu = time.perf_counter(), time.process_time()
    chunks = iter_frames(clip, CHUNK, planes=True)
    if threads:
        with BackgroundSink(hand_over) as sink:
            for chunk in prefetch(chunks):
                sink(chunk)
    else:
        for chunk in chunks:
            hand_over(chunk)
    seconds, cpu_ms = time.perf_counter() - started, (time.process_time() - cpu) * 1000
    return info.num_frames / seconds, cpu_ms / info.num_frames


def gpu_host_ceiling(clip: Path, tmp: Path, *, threads: bool, encode: bool = True) -> tuple[float, float]:
    """Frames per second, and CPU milliseconds per frame, of what a GPU host's CPU does when the
    GPU takes no time: decode (PyAV, in the prefetch thread), the side-by-side frame, the colour
    conversion and the libx264 encode (in the encoder thread). Splat, merge, compose and the
    report run on the GPU there, so they are left out. ``encode=False`` stops after the colour
    conversion: what stays on the CPU when NVENC encodes (its own upload of the frame aside)."""
    info = probe(clip)

    def convert_only(frames: np.ndarray) -> None:
        to_yuv([frames], info.fps)

    started, cpu = time.perf_counter(), time.process_time()
    with ExitStack() as stack:
        write = convert_only
        if encode:
            sbs = VideoWriter(tmp / "ceiling.mp4", fps=info.fps, width=2 * info.width, height=info.height)
            write = stack.enter_context(sbs).write
        chunks = iter_frames(clip, CHUNK)
        if threads:
            with BackgroundSink(write) as sink:
                for chunk in prefetch(chunks):
                    sink(np.concatenate([chunk, chunk], axis=2))
        else:
            for chunk in chunks:
                write(np.concatenate([chunk, chunk], axis=2))
    seconds, cpu_ms = time.perf_counter() - started, (time.process_time() - cpu) * 1000
    if encode:
        assert probe(tmp / "ceiling.mp4").num_frames == info.num_frames
    return info.num_frames / seconds, cpu_ms / info.num_frames


@contextmanager
def threads_off() -> Iterator[None]:
    """The decode and encode threads replaced by plain calls in the pipeline's own thread."""

    def inline(items: Iterator[Any], transform: Callable[[Any], Any] | None = None, depth: int = 2) -> Any:
        return (transform(item) if transform else item for item in items)

    class InlineSink:
        def __init__(self, sink: Callable[[Any], None], depth: int = 2) -> None:
            self.sink = sink

        def __enter__(self) -> Callable[[Any], None]:
            return self.sink

        def __exit__(self, *exc: object) -> None:
            pass

    saved = pipeline_module.prefetch, convert_module.BackgroundSink
    pipeline_module.prefetch, convert_module.BackgroundSink = inline, InlineSink  # type: ignore[assignment]
    try:
        yield
    finally:
        pipeline_module.prefetch, convert_module.BackgroundSink = saved  # type: ignore[assignment]


def end_to_end(clip: Path, config: StereoConfig, tmp: Path, *, threads: bool, report: bool) -> float:
    """Frames per second of ``convert_file`` on the stand-ins."""
    pipeline = StereoPipeline(InstantDepth(), EchoInpainting(), config)  # type: ignore[arg-type]
    observer = QualityReport() if report else None
    frames = probe(clip).num_frames
    started = time.perf_counter()
    if threads:
        convert_file(pipeline, clip, tmp / "out.mp4", mode="sbs", hooks=RunHooks(observer=observer))
    else:
        with threads_off():
            convert_file(pipeline, clip, tmp / "out.mp4", mode="sbs", hooks=RunHooks(observer=observer))
    seconds = time.perf_counter() - started
    assert probe(tmp / "out.mp4").num_frames == frames
    return frames / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a small clip: checks the script itself")
    parser.add_argument("--frames", type=int, default=48)
    args = parser.parse_args()
    sizes = [(320, 192)] if args.smoke else [(1920, 1080), (1024, 576)]
    frames = 8 if args.smoke else args.frames
    config = StereoConfig.from_preset("turbo")
    print(f"host only, models replaced by instant stand-ins; turbo preset, sbs; {frames} frames; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for width, height in sizes:
            clip = make_clip(tmp / f"clip_{width}.mp4", frames, width, height)
            print(f"\n{width}x{height} -> sbs {2 * width}x{height}")
            timed = parts(clip, config, tmp)
            for name, ms in timed.items():
                print(f"  {name:32s}{ms:9.1f} ms/frame")
            total = sum(ms for name, ms in timed.items() if "of which" not in name)
            print(
                f"  {'sum of the parts':32s}{total:9.1f} ms/frame ({1000 / total:.1f} frames/s in one thread)"
            )
            for threads in (True, False):
                for report in (True, False):
                    fps = end_to_end(clip, config, tmp, threads=threads, report=report)
                    label = f"threads {'on ' if threads else 'off'}, report {'on ' if report else 'off'}"
                    print(f"  end to end, {label}: {fps:6.2f} frames/s ({1000 / fps:6.1f} ms/frame)")
            print(
                "  a GPU host's own share, the GPU's work taken as 0 (4 and 8 vCPUs: the CPU ms spread over"
            )
            print("  them, an estimate and an upper bound):")
            for encode, what in (
                (True, "decode, sbs, RGB -> YUV, libx264"),
                (False, "decode, sbs, RGB -> YUV (NVENC)"),
            ):
                for threads in (True, False):
                    fps, cpu_ms = gpu_host_ceiling(clip, tmp, threads=threads, encode=encode)
                    on = "on " if threads else "off"
                    print(f"    {what:34s} threads {on}: {fps:6.2f} frames/s, {cpu_ms:6.1f} CPU ms/frame; "
                          f"4 vCPUs ~{4000 / cpu_ms:.0f}, 8 vCPUs ~{8000 / cpu_ms:.0f} frames/s")  # fmt: skip
            what = "decode, YUV on the device (NVENC)"
            for threads in (True, False):
                fps, cpu_ms = device_yuv_host(clip, threads=threads)
                on = "on " if threads else "off"
                print(f"    {what:34s} threads {on}: {fps:6.2f} frames/s, {cpu_ms:6.1f} CPU ms/frame; "
                      f"4 vCPUs ~{4000 / cpu_ms:.0f}, 8 vCPUs ~{8000 / cpu_ms:.0f} frames/s")  # fmt: skip


if __name__ == "__main__":
    main()
