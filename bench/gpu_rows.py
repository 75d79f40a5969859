"""The rows of ``bench/gpu_check.sh``, one process each (a crash or a time-out costs one row):

- ``imports``: every wheel the check needs at the project's versions, the card, its driver and
  torch's CUDA, then one bf16 matrix product timed (the measured peak the other rows compare with;
  saved to ``$OUT/peak.json``);
- ``preset NAME``: that preset's models alone (random weights, real size, fp16 as the service runs
  them; VDA-S float32 under fp16 autocast), at 1920x1080 then 1024x576: end-to-end frames/s from
  CUDA events around the whole run (no synchronisation inside it), peak memory
  (``max_memory_allocated``/``reserved``, ``mem_get_info``) next to the counted estimate, and ms per
  step of each model call it makes (eager, feed-forward chunked and not), with the UNets' share of
  the measured and the datasheet bf16 peak;
- ``compile``: the inpainting UNet at turbo's shape eager and compiled (inductor), and a turbo-only
  pipeline compiled by ``loading.compile_models`` (tiny weights) converting as it does eagerly;
- ``checks``: a float16 VAE decode with an injected inf (retried in float32, back in float16
  after), SDPA over a batch above CUDA's grid limit with and without the split, VDA-S under
  float16 autocast against float32.

Random weights: the speed and memory are real, the pictures are not. ``--smoke``: every row on
the CPU with tiny models (CI: the code paths, not the figures).

    python -m bench.gpu_rows imports|preset reference|compile|checks [--out FILE] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.gpu_presets import MetaCounter, bf16_peak, build
from stereocrafter.catalog import depth_model_of, inpainting_model_of
from stereocrafter.presets import PEAK_GPU_GB_1080P

ROOT = Path(__file__).resolve().parents[1]
SIZES = ((1920, 1080), (1024, 576))  # the most expensive first
# Peak GPU memory of a one-preset endpoint at 1024x576, GB (bench/flops.py; 1080p: presets.py)
COUNTED_GB_576P = {"reference": 17.3, "fast": 17.4, "turbo": 6.1, "instant": 1.5, "clean": 1.5}
MIGAN_TILE_FLOP = 30.2e9  # one 512x512 call of the published generator (bench/flops.py counts it)
FRAMES = 23  # one inpainting chunk; the depth window is the clip (shorter than 70/110)


def emit(row: dict[str, Any], out: Path | None) -> None:
    print(json.dumps(row), flush=True)
    if out is not None:
        with out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")


def setup(smoke: bool) -> tuple[torch.device, torch.dtype]:
    if smoke:
        return torch.device("cpu"), torch.float32
    if not torch.cuda.is_available():
        raise SystemExit("gpu_rows: no CUDA device (use --smoke on a CPU)")
    return torch.device("cuda"), torch.float16  # as loading.default_dtype


def elapsed_ms(call: Callable[[], Any], device: torch.device, repeat: int = 1) -> float:
    """Mean ms of ``call`` over ``repeat`` runs: CUDA events around all of them (one synchronisation
    at the end), or the wall clock on the CPU."""
    if device.type != "cuda":
        started = time.perf_counter()
        for _ in range(repeat):
            call()
        return (time.perf_counter() - started) * 1000 / repeat
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        call()
    end.record()
    end.synchronize()
    return float(start.elapsed_time(end)) / repeat


def measured_peak(device: torch.device, out_dir: Path | None, smoke: bool) -> float:
    """TFLOP/s of an 8192^3 bf16 matrix product (mean of 10 after 3 warm-ups), measured once per
    check: read from ``peak.json`` when the imports row wrote it."""
    saved = out_dir / "peak.json" if out_dir else None
    if saved is not None and saved.is_file():
        return float(json.loads(saved.read_text())["bf16_tflops"])
    n = 256 if smoke else 8192
    dtype = torch.float32 if smoke else torch.bfloat16
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    ms = elapsed_ms(lambda: a @ b, device, repeat=10)
    tflops = 2 * n**3 / (ms / 1000) / 1e12
    if saved is not None:
        saved.write_text(json.dumps({"bf16_tflops": tflops}))
    return tflops


# --- imports ---------------------------------------------------------------------------------


def pinned(name: str) -> str | None:
    for line in (ROOT / "requirements" / "runtime.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.split("==")[1]
    return None


def row_imports(args: argparse.Namespace, device: torch.device) -> int:
    import av
    import diffusers
    import transformers

    from stereocrafter.pipeline.run import StereoPipeline  # noqa: F401  (the package imports here)

    wrong = [
        f"{module.__name__} {module.__version__} (pinned {pinned(module.__name__)})"
        for module in (diffusers, transformers, av)
        if module.__version__ != pinned(module.__name__)
    ]
    facts: dict[str, Any] = {
        "row": "imports",
        "torch": torch.__version__,
        "torch_pinned": pinned("torch"),
        "torch_cuda": torch.version.cuda,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "av": av.__version__,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(0)
        memory = round(props.total_memory / 1e9, 1)
        facts.update(device=props.name, gpus=torch.cuda.device_count(), memory_gb=memory)
        facts.update(capability=f"{props.major}.{props.minor}", arch_list=torch.cuda.get_arch_list())
    peak = measured_peak(device, args.out.parent if args.out else None, args.smoke)
    facts["bf16_matmul_tflops"] = round(peak, 1)
    facts["bf16_datasheet_tflops"] = bf16_peak(facts.get("device", "")) if device.type == "cuda" else None
    if wrong:
        facts["error"] = "carry the wheels at the project's versions: " + ", ".join(wrong)
    emit(facts, args.out)
    return 1 if wrong else 0


# --- one preset ------------------------------------------------------------------------------


def model_calls(preset: str, size: tuple[int, int], smoke: bool) -> list[Any]:
    from stereocrafter.pipeline.compile import warmup_calls

    if smoke:
        from stereocrafter.stages.base import WarmupCall

        calls = warmup_calls((preset,), (64, 96))
        return [WarmupCall(c.model, min(c.frames, 4), c.batch, (28, 28) if c.model == "vda-small" else c.size)
                for c in calls]  # fmt: skip
    return warmup_calls((preset,), (size[1], size[0]))


def frame_fill(preset: str, device: torch.device, dtype: torch.dtype, smoke: bool) -> Any:
    """The ``instant``/``clean`` inpainting stage on random weights (MI-GAN: the published 512
    generator, or the tiny one with ``smoke``), as the stage runs it (MI-GAN in ``dtype``)."""
    from stereocrafter.models.migan import PUBLISHED
    from stereocrafter.stages.fill import BackgroundFillStage, ClipFill
    from stereocrafter.stages.migan import MiganStage, MiganTiles
    from stereocrafter.testing.weights import TINY_MIGAN, random_migan

    if inpainting_model_of(preset) == "background-fill":
        return BackgroundFillStage(ClipFill(device))
    generator = random_migan(TINY_MIGAN if smoke else PUBLISHED).to(device=device, dtype=dtype).eval()
    return MiganStage(MiganTiles(generator.requires_grad_(False)))


def time_call(model: Any, call: Any, device: torch.device, dtype: torch.dtype, chunked: bool) -> float:
    """ms of one call of ``model`` at ``call``'s shape (1 warm-up, then the mean of 3)."""
    from stereocrafter.models.attention import chunk_feed_forward

    with torch.no_grad():
        if call.model in ("migan", "background-fill"):  # the stage's own warm-up call
            model.warm_up(call)
            return elapsed_ms(lambda: model.warm_up(call), device, repeat=3)
        if call.model == "vda-small":
            frames = torch.zeros(call.frames, 3, *call.size, device=device)
            return elapsed_ms(lambda: model._window_depth(frames), device, repeat=3)
        chunk_feed_forward(model, 1 if chunked else None)
        model._stereocrafter_ff_chunking = None  # the pipelines decide again on their next call
        channels = model.config.in_channels
        sample = torch.zeros(call.batch, call.frames, channels, *call.size, device=device, dtype=dtype)
        context = (call.frames if call.model == "depthcrafter" else 1, model.config.cross_attention_dim)
        hidden = torch.zeros(call.batch, *context, device=device, dtype=dtype)
        ids = torch.zeros(call.batch, 3, device=device, dtype=dtype)
        t = torch.tensor(1.0, device=device)

        def once() -> Any:
            return model(sample, t, encoder_hidden_states=hidden, added_time_ids=ids, return_dict=False)

        once()
        return elapsed_ms(once, device, repeat=3)


def convert_once(pipeline: Any, video: np.ndarray, device: torch.device) -> tuple[float, dict[str, float]]:
    """One sbs conversion of ``video`` as a job runs it (under a deadline checked at every model
    call): its ms between CUDA events around the whole run, and the pipeline's stage timings."""
    from stereocrafter.guard import Deadline
    from stereocrafter.pipeline.types import RunHooks

    frames_n, height, width = video.shape[:3]
    deadline = Deadline(300.0, why=" (gpu check)")
    kept: list[int] = []
    done: list[Any] = []

    def run() -> None:
        done.append(pipeline.run(lambda: iter([video]), lambda chunk: kept.append(len(chunk)),
                                 num_frames=frames_n, width=width, height=height, mode="sbs",
                                 hooks=RunHooks(stop=deadline)))  # fmt: skip

    ms = elapsed_ms(run, device)
    assert sum(kept) == frames_n
    return ms, {stage: round(seconds, 3) for stage, seconds in done[0].timings.items()}


def row_preset(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.run import StereoPipeline

    preset = args.preset
    started = time.perf_counter()
    diffusion = inpainting_model_of(preset) == "stereocrafter"  # else a licence-clean preset's fill
    depth, vda, inpainting = build(device, dtype, args.smoke, depth_models=(depth_model_of(preset),),
                                   inpainting=diffusion)  # fmt: skip
    if not diffusion:
        inpainting = frame_fill(preset, device, dtype, args.smoke)
    built_s = time.perf_counter() - started
    peak = measured_peak(device, args.out.parent if args.out else None, args.smoke)
    datasheet = bf16_peak(torch.cuda.get_device_name()) if device.type == "cuda" else None
    counter = MetaCounter(args.smoke)
    small = {"depth_input_size": 28} if args.smoke else {}
    config = StereoConfig.from_preset(preset, **small)
    pipeline = StereoPipeline([p for p in (depth, vda) if p is not None], inpainting, config)
    models = {"depthcrafter": depth.unet if depth else None, "vda-small": vda if vda else None,
              "stereocrafter": getattr(inpainting, "unet", None), "migan": inpainting,
              "background-fill": inpainting}  # fmt: skip
    failures = 0
    timed: dict[tuple[Any, ...], dict[str, Any]] = {}  # a shape both sizes share is timed once
    frames_n = 8 if args.smoke else FRAMES
    warm = (96, 64) if args.smoke else (448, 256)
    for index, (width, height) in enumerate([warm, *([(96, 64)] if args.smoke else SIZES)]):
        video = (np.random.default_rng(0).random((frames_n, height, width, 3)) * 255).astype(np.uint8)

        row: dict[str, Any] = {"row": "preset", "preset": preset, "size": f"{width}x{height}"}
        row["frames"] = frames_n
        try:
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            ms, timings = convert_once(pipeline, video, device)
            if index == 0:  # the warm-up at a small size (cuDNN plans, the allocator): not a figure
                print(
                    f"{preset}: models built in {built_s:.0f} s, warmed up in {ms / 1000:.1f} s", flush=True
                )
                continue
            row.update(frames_per_s=round(frames_n / (ms / 1000), 3), seconds=round(ms / 1000, 2),
                       stages_s=timings)  # fmt: skip
            if device.type == "cuda":
                free, total = torch.cuda.mem_get_info()
                row.update(
                    max_allocated_gb=round(torch.cuda.max_memory_allocated() / 1e9, 2),
                    max_reserved_gb=round(torch.cuda.max_memory_reserved() / 1e9, 2),
                    free_gb=round(free / 1e9, 1), total_gb=round(total / 1e9, 1),
                    counted_gb=PEAK_GPU_GB_1080P[preset] if height == 1080 else COUNTED_GB_576P[preset],
                )  # fmt: skip
            steps = []
            for call in model_calls(preset, (width, height), args.smoke):
                if call in timed:
                    steps.append(timed[call])
                    continue
                model = models[call.model]
                entry: dict[str, Any] = {"model": call.model, "shape": [call.batch, call.frames, *call.size]}
                variants = (
                    (False,) if call.model in ("vda-small", "migan", "background-fill") else (False, True)
                )
                for chunked in variants:
                    key = "ms_chunked" if chunked else "ms"
                    entry[key] = round(time_call(model, call, device, dtype, chunked), 1)
                if call.model == "background-fill":  # element-wise work: no FLOP figure
                    steps.append(entry)
                    timed[call] = entry
                    continue
                kinds = {"depthcrafter": "depth", "vda-small": "vda", "stereocrafter": "inpainting",
                         "migan": "migan"}  # fmt: skip
                stage = kinds[call.model]
                if stage == "migan":
                    flop = MIGAN_TILE_FLOP * call.batch
                elif stage == "vda":
                    flop = counter("vda", (1, call.frames, 3, *call.size), ())
                else:
                    channels = model.config.in_channels
                    context = (
                        call.batch,
                        call.frames if stage == "depth" else 1,
                        model.config.cross_attention_dim,
                    )
                    flop = counter(stage, (call.batch, call.frames, channels, *call.size), context)
                tflops = flop / (entry["ms"] / 1000) / 1e12
                entry.update(tflop=round(flop / 1e12, 2), tflops=round(tflops, 1))
                entry["share_of_measured_peak"] = round(tflops / peak, 3)
                entry["share_of_datasheet_peak"] = round(tflops / datasheet, 3) if datasheet else None
                steps.append(entry)
                timed[call] = entry
            row["model_calls"] = steps
        except Exception as err:  # an OOM at 1080p is a figure too: record it, go on
            failures += 1
            row["error"] = f"{type(err).__name__}: {err}"[:300]
            if device.type == "cuda":
                torch.cuda.empty_cache()
        emit(row, args.out)
    if not diffusion and device.type == "cuda" and not args.smoke:
        # the splat and the fill at 1080p: ms per frame, counted GB per frame, GB/s against the datasheet
        from bench.traffic import device_row

        try:
            emit({"row": "traffic", **device_row(preset, device, stage=inpainting)}, args.out)
        except Exception as err:
            failures += 1
            emit(
                {"row": "traffic", "preset": preset, "error": f"{type(err).__name__}: {err}"[:300]}, args.out
            )
    return 1 if failures else 0


# --- compile ---------------------------------------------------------------------------------


def row_compile(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    """First a turbo-only pipeline on tiny weights compiled as the service compiles it
    (``loading.compile_models``) and converting as it does eagerly; then the real inpainting UNet
    at turbo's shape, eager (feed-forward whole and chunked) against inductor with the feed-forward
    whole (chunked, the graph holds 23x the feed-forward calls, whose capture does not fit this
    row's budget). Each part is written as soon as it is done: a time-out keeps the first."""
    import tempfile

    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.compile import compile_models
    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.stages.base import WarmupCall
    from stereocrafter.testing.weights import make_tiny_weights

    backend = "eager" if args.smoke else "inductor"
    row: dict[str, Any] = {"row": "compile turbo-only pipeline", "backend": backend}
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_weights(Path(tmp))
        config = StereoConfig.from_preset("turbo", inpaint_steps=2)
        eager = load_stereo_pipeline(tmp, device=device, config=config, presets=("turbo",))
        compiled = load_stereo_pipeline(tmp, device=device, config=config, presets=("turbo",))
        started = time.perf_counter()
        calls = compile_models(compiled, backend, presets=("turbo",), warmup_size=(64, 96))
        row["compile_s"] = round(time.perf_counter() - started, 1)
        row["warmed"] = [c.model for c in calls]
        video = (np.random.default_rng(3).random((5, 64, 96, 3)) * 255).astype(np.uint8)

        def convert(pipeline: Any) -> np.ndarray:
            out: list[np.ndarray] = []
            pipeline.run(lambda: iter([video]), out.append, num_frames=5, width=96, height=64, mode="sbs")
            return np.concatenate(out)

        difference = np.abs(convert(eager).astype(int) - convert(compiled).astype(int))
        row["max_8bit_difference"] = int(difference.max())  # fused kernels may round differently
    emit(row, args.out)
    if row["max_8bit_difference"] > 8:
        return 1
    _, _, inpainting = build(device, dtype, args.smoke, depth_models=())
    call = WarmupCall("stereocrafter", 4 if args.smoke else 23, 1, (8, 8) if args.smoke else (32, 56))
    unet = inpainting.unet
    row = {
        "row": "compile inpainting UNet",
        "backend": backend,
        "shape": [call.batch, call.frames, *call.size],
    }
    row["eager_ms"] = round(time_call(unet, call, device, dtype, chunked=False), 1)
    row["eager_chunked_ms"] = round(time_call(unet, call, device, dtype, chunked=True), 1)
    unet.compile(backend=backend)
    started = time.perf_counter()
    time_call(unet, call, device, dtype, chunked=False)  # compiles (its warm-up call), then times
    row["compile_and_first_calls_s"] = round(time.perf_counter() - started, 1)
    row["compiled_ms"] = round(time_call(unet, call, device, dtype, chunked=False), 1)
    emit(row, args.out)
    return 0


# --- small CUDA checks -----------------------------------------------------------------------


def row_checks(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> int:
    import tempfile

    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    from stereocrafter.models.attention import CUDA_GRID_LIMIT, BatchSplitAttnProcessor
    from stereocrafter.models.vda import SMALL, VideoDepthAnything
    from stereocrafter.models.vda_depth import VdaDepthPipeline
    from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline
    from stereocrafter.testing.weights import TINY_VDA, make_tiny_weights

    row: dict[str, Any] = {"row": "checks"}
    failed: list[str] = []
    # 1. a float16 decode that overflows: decoded again in float32, then back to float16
    with tempfile.TemporaryDirectory() as tmp:
        make_tiny_weights(Path(tmp))
        pipe = load_depth_pipeline(tmp, device=device, dtype=dtype)
    seen: list[torch.dtype] = []

    def overflow_first(_module: Any, _inputs: Any, output: torch.Tensor) -> Any:
        seen.append(output.dtype)
        return torch.full_like(output, float("inf")) if len(seen) == 1 else None

    handle = pipe.vae.decoder.register_forward_hook(overflow_first)
    try:
        depth = pipe(torch.rand(4, 3, 64, 64, device=device), num_inference_steps=1, window_size=8, overlap=2,
                     decode_chunk_size=4)  # fmt: skip
    finally:
        handle.remove()
    after = next(pipe.vae.decoder.parameters()).dtype
    row["decode_retry"] = {"dtypes": [str(d) for d in seen], "finite": bool(torch.isfinite(depth).all()),
                           "decoder_after": str(after)}  # fmt: skip
    if seen[1:2] != [torch.float32] or after != dtype or not row["decode_retry"]["finite"]:
        failed.append("decode retry")
    # 2. VDA-S under float16 autocast against float32 (one window at the processing size)
    size = (28, 28) if args.smoke else (518, 924)
    model = VideoDepthAnything(TINY_VDA if args.smoke else SMALL).to(device).eval().requires_grad_(False)
    frames = torch.rand(32, 3, *size, device=device, generator=torch.Generator(device).manual_seed(0))
    half = VdaDepthPipeline(model, autocast_dtype=torch.float16)._window_depth(frames)
    full = VdaDepthPipeline(model, autocast=False)._window_depth(frames)
    spread = float(full.max() - full.min()) or 1.0
    row["vda_fp16_vs_fp32"] = {"max_abs_over_range": round(float((half - full).abs().max()) / spread, 5),
                               "finite": bool(torch.isfinite(half).all())}  # fmt: skip
    if not row["vda_fp16_vs_fp32"]["finite"]:
        failed.append("VDA fp16")
    del model, frames, half, full
    # 3. SDPA over a batch above CUDA's grid limit, split and not (last: an error may be sticky)
    attn = Attention(query_dim=320, heads=5, dim_head=64).to(device=device, dtype=dtype).eval()
    batch = 300 if args.smoke else CUDA_GRID_LIMIT + 4_465  # 70,000 sequences (1080p's temporal batch)
    limit = 128 if args.smoke else CUDA_GRID_LIMIT
    hidden = torch.randn(batch, 23, 320, device=device, dtype=dtype)
    with torch.no_grad():
        split = BatchSplitAttnProcessor(limit)(attn, hidden)
        try:
            whole = AttnProcessor2_0()(attn, hidden)
            if device.type == "cuda":
                torch.cuda.synchronize()
            row["sdpa_over_grid_limit"] = {"batch": batch, "unsplit": "ran",
                                           "max_difference": float((whole - split).abs().max())}  # fmt: skip
        except RuntimeError as err:
            row["sdpa_over_grid_limit"] = {"batch": batch, "unsplit": f"failed: {str(err)[:160]}",
                                           "split": "ran"}  # fmt: skip
    emit(row, args.out)
    if failed:
        print("FAILED:", ", ".join(failed))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("row", choices=("imports", "preset", "compile", "checks"))
    parser.add_argument("preset", nargs="?", default="turbo")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    device, dtype = setup(args.smoke)
    if args.smoke:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if args.row == "imports":
        return row_imports(args, device)
    if args.row == "preset":
        return row_preset(args, device, dtype)
    return row_compile(args, device, dtype) if args.row == "compile" else row_checks(args, device, dtype)


if __name__ == "__main__":
    sys.exit(main())
