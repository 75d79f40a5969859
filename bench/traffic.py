"""What the licence-clean presets' element-wise stages cost a GPU per frame: aten ops (kernel
launches), host syncs and tensor bytes, counted on this CPU; and the same work compiled.

The work is that of a conversion at the given size, through the stages' own interfaces:

- ``splat``: the left view and its disparity splatted into the right view with the right view's
  disparity (``stereo.splatting.forward_splat``, as ``pipeline.run``'s source does it for a stage
  that asks for the disparity), and for ``clean`` the shrink to its working size;
- ``fill``: ``instant``'s stage (``stages.fill``) on chunks of 16 of those frames;
- ``migan``: ``clean``'s stage (``stages.migan``) at its working size (1024x576 for 1080p), every
  tile with a hole (a hole in each), the generator's own work left out of the count (its FLOPs are
  ``bench/flops.py``'s; here a generator of the published 512 px tile with tiny widths stands in).

Counting (``Traffic``, a ``TorchDispatchMode``): every aten op that is not a view is one op; a
host sync is an op that hands a value to the host (``_local_scalar_dense``: ``.item()``,
``bool()``, ``tolist()``; ``nonzero``, whose size the host needs). Bytes, two ways (an expanded
tensor counts its distinct elements once; an in-place scatter, ``index_put_``, ``index_add_``...,
counts its target as the rows it reads and writes, twice its values, not as the whole tensor):

- ``listed`` (the issue's rule): every tensor an op is handed or returns, added up. An ``out=``
  tensor is handed and returned, so it counts twice; so does the target of ``copy_`` or
  ``fill_``; an allocation (``empty``) counts the memory it reserves.
- ``moved`` (what memory traffic is; the gates): what an op reads plus what it writes. A tensor
  an op only writes (an ``out=`` argument; the target of ``copy_``, ``fill_``, ``zero_``) counts
  once, as the output; an in-place op (``add_``, ``clamp_``) reads and writes its target, twice;
  an allocation moves nothing; a gather (``index``, ``gather``, ``index_select``) reads its indices
  and, of its source, at most one 32-byte sector (a GPU's smallest memory transaction) for each
  element it hands back, never more than the whole source.

Figures per frame.

Compiled: ``stereo.fill.fill_chunk`` through ``torch.compile(fullgraph=True)`` (inductor, CPU code
here): the kernels inductor generated and its estimate of the bytes they access (per frame).

    python -m bench.traffic                 # 1080p, 32 frames (about 2 min on 2 cores)
    python -m bench.traffic --size 96x160   # the CI smoke's size
    python -m bench.traffic --frames 16 --check   # CI's smoke: one chunk, the floors as a gate

Targets (issue 38; per 1080p frame, eager), printed as held or NOT MET: ``instant`` splat + fill at
most 1.5 GB, 80 ops, 1 host sync; ``clean`` splat + MI-GAN stage at most 2.5 GB, 150 ops. ``--check``
fails on the regression floors (``FLOORS``: the ops and syncs targets, the GB reached with a
margin; GB judged at 1080p only) and unless the fill compiles with ``fullgraph=True`` and gives the
eager result.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from stereocrafter.config import StereoConfig
from stereocrafter.stages.fill import BackgroundFillStage
from stereocrafter.stages.frames import FRAME_CHUNK
from stereocrafter.stages.migan import MiganTiles
from stereocrafter.stereo import fill
from stereocrafter.stereo.merge import shrink, working_size
from stereocrafter.stereo.splatting import forward_splat

SYNCS = {"_local_scalar_dense", "nonzero", "item"}
# Ops that reserve memory and write none of it.
ALLOCATIONS = {"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided"}
# In-place ops that write their target without reading it.
WRITE_ONLY = {"copy_", "fill_", "zero_"}
# Ops that read their first argument only where their indices point.
GATHERS = {"index", "gather", "index_select", "take"}
SECTOR = 32  # bytes: the smallest read a GPU's memory serves
# In-place scatters touch only the rows they write: their target counts as the values written
# (read and written: 2x), not as the whole tensor.
SCATTERS = {"index_put_", "_index_put_impl_", "index_add_", "index_copy_", "scatter_", "scatter_add_"}
# Per 1080p frame, eager. The targets are printed as held or not; the regression floors (the
# figures reached, with a margin) fail ``--check``.
TARGETS = {"instant": {"gb": 1.5, "ops": 80, "syncs": 1.0}, "clean": {"gb": 2.5, "ops": 150}}
FLOORS = {"instant": {"gb": 2.0, "ops": 80, "syncs": 1.0}, "clean": {"gb": 2.3, "ops": 150}}


def size(tree: Any) -> int:
    """The distinct bytes of every tensor in a tree of arguments or results."""
    return sum(distinct_bytes(x) for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor))


def distinct_bytes(t: torch.Tensor) -> int:
    """The bytes of the elements a tensor reaches (an expanded dimension counts once)."""
    count = 1
    for size, stride in zip(t.shape, t.stride(), strict=True):
        if stride != 0:
            count *= size
    return count * t.element_size()


class Traffic(TorchDispatchMode):
    """Counts ops, host syncs and tensor bytes under a label (``label``; ``paused`` skips)."""

    def __init__(self) -> None:
        super().__init__()
        self.label = "other"
        self.paused = False
        self.figures: dict[str, dict[str, float]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        if self.paused or func.is_view:
            return out
        row = self.figures.setdefault(self.label, {"ops": 0, "syncs": 0, "bytes": 0, "listed": 0})
        row["ops"] += 1
        name = func._schema.name.split("::")[-1]
        if name in SYNCS:
            row["syncs"] += 1
        if name in SCATTERS:  # self, then the indices and the values
            inputs = [x for x in tree_flatten((args[1:], kwargs))[0] if isinstance(x, torch.Tensor)]
            values = distinct_bytes(inputs[-1])
            scattered = sum(distinct_bytes(x) for x in inputs) + 2 * values
            row["bytes"] += scattered
            row["listed"] += scattered
            return out
        written = {id(x) for x in tree_flatten(out)[0] if isinstance(x, torch.Tensor)}
        handed = [x for x in tree_flatten((args, kwargs))[0] if isinstance(x, torch.Tensor)]
        row["listed"] += size(handed) + size(out)
        if name in ALLOCATIONS:
            return out
        # Read: what the op is handed, but not a tensor it only writes (an out= argument, which it
        # returns, of an op that is not in place; the target of a write-only in-place op).
        in_place = name.endswith("_")
        read = [x for x in handed if id(x) not in written or (in_place and name not in WRITE_ONLY)]
        if name in GATHERS and isinstance(out, torch.Tensor):
            source, indices = read[0], read[1:]
            row["bytes"] += min(distinct_bytes(source), out.numel() * SECTOR) + size(indices) + size(out)
            return out
        row["bytes"] += size(read) + size(out)
        return out


def clip(frames: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A left view with texture and a disparity with near objects (right edge included) in front of
    a receding background: (t, 3, h, w) in [0, 1], (t, 1, h, w) in pixels (max 6 % of the width)."""
    g = torch.Generator().manual_seed(0)
    y = torch.linspace(0, 1, height).view(1, 1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, 1, width)
    view = torch.rand(frames, 3, height, width, generator=g) * 0.3 + 0.35 * (1 + torch.sin(40 * x + 20 * y))
    near = 0.06 * width
    disparity = (-0.3 + 0.3 * y).expand(frames, 1, height, width) * near
    disparity = disparity.clone()
    for f in range(frames):
        left = int((0.2 + 0.01 * f) * width)
        disparity[f, :, height // 4 : 3 * height // 4, left : left + width // 5] = near
        disparity[f, :, height // 3 : height // 2, int(0.85 * width) :] = near
    return view.clamp(0, 1).contiguous(), disparity


def splat(view: torch.Tensor, disparity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As the pipeline's source does it: the right view, its occlusion and its disparity."""
    warped, occlusion = forward_splat(view, disparity, carry_disparity=True)
    return warped[:, :3], occlusion, warped[:, 3:]


class Source:
    """The stages' ``HoleSource``: splats each range asked for (counted as ``<preset> splat``) and,
    for ``clean``, shrinks it to the working size."""

    def __init__(self, view: torch.Tensor, disparity: torch.Tensor, counter: Traffic, preset: str,
                 work: tuple[int, int]) -> None:  # fmt: skip
        self.view, self.disparity_, self.counter, self.preset, self.work = (
            view,
            disparity,
            counter,
            preset,
            work,
        )
        self.last: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.view.shape[0]

    def __getitem__(self, index: slice) -> tuple[torch.Tensor, torch.Tensor]:
        self.counter.label = f"{self.preset} splat"
        right, occlusion, right_disparity = splat(self.view[index], self.disparity_[index])
        w = self.view.shape[-1]
        if tuple(right.shape[-2:]) != self.work:
            right, occlusion = shrink(right, occlusion, self.work)
            right_disparity = torch.nn.functional.interpolate(
                right_disparity * (self.work[1] / w), size=self.work, mode="nearest"
            )
        self.last = right_disparity
        self.counter.label = f"{self.preset} {'fill' if self.preset == 'instant' else 'migan'}"
        return right, occlusion

    def disparity(self, index: slice) -> torch.Tensor:
        assert self.last is not None
        return self.last


def clean_stage(counter: Traffic | None, tile: int = 512) -> Any:
    """``clean``'s stage on random weights: a generator of the published tile with tiny widths, its
    own work left out of the count (``counter`` paused while it runs)."""
    from stereocrafter.models.migan import MiganArchitecture
    from stereocrafter.stages.migan import MiganStage
    from stereocrafter.testing.weights import random_migan

    arch = MiganArchitecture(resolution=tile, ch_base=4 * tile, ch_max=4)
    generator = random_migan(arch).eval().requires_grad_(False)
    if counter is not None:
        generator.register_forward_pre_hook(lambda *_: setattr(counter, "paused", True))
        generator.register_forward_hook(lambda *_: setattr(counter, "paused", False))
    return MiganStage(MiganTiles(generator))


def run(preset: str, view: torch.Tensor, disparity: torch.Tensor, counter: Traffic | None,
        stage: Any = None) -> None:  # fmt: skip
    """The preset's inpainting stage over the clip, through ``iter_inpaint`` (``stage``: the one
    to run, else a fresh one on the view's device)."""
    _, _, h, w = view.shape
    config = StereoConfig.from_preset(preset)
    work = working_size(h, w, config.inpaint_max_res, 8)
    if stage is None and preset == "instant":
        stage = BackgroundFillStage.load("", device=view.device, dtype=torch.float32, shared={})
    elif stage is None:
        stage = clean_stage(counter, tile=min(512, 2 ** int(math.log2(min(work)))))
    source = Source(view, disparity, counter or Traffic(), preset, work)
    for _ in stage.iter_inpaint(source, config, torch.Generator()):
        pass


# Datasheet memory bandwidth, GB/s (the first name contained in the card's wins).
BANDWIDTH_GBS = {"H200": 4800, "H100 PCIe": 2000, "H100": 3350, "A100-SXM4-80GB": 2039, "A100": 1555,
                 "L40S": 864, "A10G": 600, "L4": 300, "T4": 320}  # fmt: skip


def device_row(preset: str, device: torch.device, size: tuple[int, int] = (1080, 1920), frames: int = 16,
               stage: Any = None) -> dict[str, Any]:  # fmt: skip
    """On ``device`` (a GPU): the preset's splat and inpainting stage over ``frames`` frames at
    ``size``: ms per frame of the splat and of both (CUDA events, after a warm-up), the bytes per
    frame counted here on the same inputs, and the GB/s they make against the card's datasheet.
    A ``stage`` given (``bench/gpu_rows.py``: MI-GAN's published generator) is counted whole, its
    model's tensors included, as the GPU moves them."""
    view, disparity = (x.to(device) for x in clip(frames, *size))
    counter = Traffic()
    with counter:
        run(preset, view, disparity, counter, stage)
    counted = {k: v["bytes"] / frames for k, v in counter.figures.items()}

    def timed(call: Any) -> float:
        call()  # warm-up
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        call()
        end.record()
        torch.cuda.synchronize()
        return float(start.elapsed_time(end)) / frames

    splat_ms = timed(lambda: splat(view, disparity))
    both_ms = timed(lambda: run(preset, view, disparity, None, stage))
    name = torch.cuda.get_device_name(device)
    datasheet = next((v for k, v in BANDWIDTH_GBS.items() if k in name), None)
    gb = sum(counted.values()) / 1e9
    return {"preset": preset, "size": f"{size[1]}x{size[0]}", "frames": frames,
            "splat_ms_per_frame": round(splat_ms, 3), "splat_and_fill_ms_per_frame": round(both_ms, 3),
            "counted_gb_per_frame": round(gb, 3), "achieved_gb_s": round(gb / (both_ms / 1000), 1),
            "datasheet_gb_s": datasheet,
            "share_of_datasheet": round(gb / (both_ms / 1000) / datasheet, 3) if datasheet else None,
            }  # fmt: skip


def compiled_fill(view: torch.Tensor, disparity: torch.Tensor) -> dict[str, float]:
    """``fill_chunk`` under ``torch.compile(fullgraph=True)``: inductor's kernels and bytes."""
    import torch._dynamo
    from torch._inductor import metrics

    torch._dynamo.reset()
    torch._dynamo.config.capture_dynamic_output_shape_ops = True  # the hole list's length
    right, occlusion, right_disparity = splat(view[:FRAME_CHUNK], disparity[:FRAME_CHUNK])
    holes = occlusion >= 0.5
    compiled = torch.compile(fill.fill_chunk, fullgraph=True, dynamic=False)
    metrics.reset()
    started = time.perf_counter()
    compiled(right, holes, right_disparity, fill.empty_state(right))
    seconds = time.perf_counter() - started
    frames = right.shape[0]
    eager = fill.fill_chunk(right, holes, right_disparity, fill.empty_state(right))[0]
    again = compiled(right, holes, right_disparity, fill.empty_state(right))[0]
    kernels, accessed = metrics.generated_kernel_count, metrics.num_bytes_accessed
    return {"kernels": kernels / frames, "gb": accessed / frames / 1e9,
            "compile_s": seconds, "same": float(torch.equal(eager, again))}  # fmt: skip


def _line(label: str, row: dict[str, float]) -> str:
    gb, listed = row["bytes"] / 1e9, row["listed"] / 1e9
    return f"{label:16s} {row['ops']:8.1f} {row['syncs']:6.2f} {gb:9.3f} {listed:10.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1080x1920", help="HEIGHTxWIDTH")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.split("x"))
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {args.frames} frames of {height}x{width}")  # fmt: skip
    view, disparity = clip(args.frames, height, width)
    counter = Traffic()
    with counter:
        run("instant", view, disparity, counter)
        run("clean", view, disparity, counter)
    per_frame = {k: {n: v / args.frames for n, v in row.items()} for k, row in counter.figures.items()}
    print(f"{'per frame':16s} {'ops':>8s} {'syncs':>6s} {'GB moved':>9s} {'GB listed':>10s}")
    for label, row in per_frame.items():
        print(_line(label, row))
    failures = []
    full = (height, width) == (1080, 1920)
    for preset, parts in (
        ("instant", ("instant splat", "instant fill")),
        ("clean", ("clean splat", "clean migan")),
    ):
        total = {
            n: sum(per_frame.get(p, {}).get(n, 0.0) for p in parts)
            for n in ("ops", "syncs", "bytes", "listed")
        }
        gb = total["bytes"] / 1e9
        print(_line(preset + " total", total))
        for kind, limits in (("issue target", TARGETS[preset]), ("regression floor", FLOORS[preset])):
            missed = [f"{total['ops']:.1f} ops > {limits['ops']}"] if total["ops"] > limits["ops"] else []
            if total["syncs"] > limits.get("syncs", math.inf):
                missed.append(f"{total['syncs']:.2f} syncs > {limits['syncs']}")
            if full and gb > limits["gb"]:
                missed.append(f"{gb:.3f} GB > {limits['gb']}")
            said = ", ".join(f"{v} {k}" for k, v in limits.items()) + ("" if full else " (GB: at 1080p only)")
            print(f"  {kind} ({said}): " + ("NOT MET: " + "; ".join(missed) if missed else "held"))
            if kind == "regression floor" and missed:
                failures.append(f"{preset}: " + "; ".join(missed))
    if not args.no_compile:
        try:
            c = compiled_fill(view, disparity)
            accessed = (
                f"{c['gb']:.3f} GB per frame (inductor's estimate)" if c["gb"] else "bytes: n/a (CPU kernels)"
            )
            print(
                f"instant fill compiled (fullgraph): {c['kernels']:.2f} kernels per frame, {accessed}, "
                f"compiled in {c['compile_s']:.0f} s, same as eager: {bool(c['same'])}"
            )
            if not c["same"]:
                failures.append("the compiled fill differs from the eager one")
        except Exception as error:
            failures.append(f"the fill does not compile with fullgraph=True: {type(error).__name__}: {error}")
    if args.check and failures:
        print("CHECK FAILED: " + "; ".join(failures))
        return 1
    if args.check:
        print("check held: traffic, op and sync gates, fullgraph compile")
    return 0


if __name__ == "__main__":
    sys.exit(main())
