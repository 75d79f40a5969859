"""Disparity jumps at segment boundaries, without and with alignment, on a scene whose depth is known.

The scene of stereocrafter/testing/scenes.py (planes moving in depth; something very near passes by in the
middle; its true depth carried in the blue channel, losslessly stored) is cut into segments. A
stand-in depth stage returns each segment's true depth under a different random affine map, as
DepthCrafter's per-clip ambiguity would. Every run draws new distortions (its seed is its segment
length); they do not change the figures: the alignment undoes them, and per-segment min-max
normalisation is blind to them. Each segment then goes through the real pipeline (real
splatting; tiny random inpainting weights, whose output does not matter here) twice:

- unaligned: one plain request per segment, normalised alone (what the service did before);
- aligned: ``convert_segments`` (depth tasks, alignment, stereo tasks with the stored depth).

The disparity each stereo pass used is read by an observer. Printed per boundary: the mean absolute
change of disparity (px, max_disp 20) from the last frame of a segment to the first of the next,
unaligned and aligned, and the true scene's own change there (its depth normalised once over the
whole video). With ``--plot`` it draws docs/long-video-alignment.png.

    python -m bench.long_align [--lengths 12,8,16] [--plot]
    python -m bench.long_align --smoke        # 3 segments of 12 frames (CI)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import torch

from stereocrafter.models.thirdparty import quiet_known_messages

quiet_known_messages()  # before diffusers and transformers are imported
from stereocrafter.config import StereoConfig  # noqa: E402
from stereocrafter.long.local import cut_segments  # noqa: E402
from stereocrafter.pipeline.run import StereoPipeline  # noqa: E402
from stereocrafter.stages.stereocrafter import load_pipeline as load_inpainting_pipeline  # noqa: E402
from stereocrafter.testing.media import make_video  # noqa: E402
from stereocrafter.testing.scenes import KnownDepth, convert_both_ways, render  # noqa: E402
from stereocrafter.testing.weights import make_tiny_weights  # noqa: E402

MAX_DISP, FPS, HEIGHT, WIDTH = 20.0, 12, 72, 128


FIXED = (int(0.65 * HEIGHT), int(0.55 * WIDTH))  # a point on a plane that never moves in depth


def run(length: int, segments: int, tmp: Path, inpainting: Any, extrapolate: bool = True) -> dict[str, Any]:
    seed = length
    frames, truth = render(segments * length, HEIGHT, WIDTH)
    source = make_video(tmp / f"scene{seed}.mkv", frames, fps=FPS, codec="ffv1", pix_fmt="bgr0")
    parts = cut_segments(source, length / FPS)
    pipeline = StereoPipeline(KnownDepth(seed), inpainting, StereoConfig(max_disp=MAX_DISP, inpaint_steps=1))
    unaligned, aligned, result = convert_both_ways(pipeline, parts, tmp, extrapolate=extrapolate)
    assert not result.failed, result.failed
    true_disp = torch.from_numpy(truth).float()
    true_disp = MAX_DISP * (2 * (true_disp - true_disp.min()) / (true_disp.max() - true_disp.min()) - 1)
    boundaries = [p.start for p in parts[1:]]

    def jump(store: dict[int, torch.Tensor], b: int) -> float:
        return float((store[b] - store[b - 1]).abs().mean())

    def drift(store: dict[int, torch.Tensor]) -> float:
        values = [float(store[f][FIXED]) for f in store]
        return max(values) - min(values)

    return {
        "drift": {"unaligned": drift(unaligned), "aligned": drift(aligned)},
        "boundaries": boundaries,
        "unaligned": [jump(unaligned, b) for b in boundaries],
        "aligned": [jump(aligned, b) for b in boundaries],
        "truth": [float((true_disp[b] - true_disp[b - 1]).abs().mean()) for b in boundaries],
        "series": {"unaligned": unaligned, "aligned": aligned},
        "table": result.alignment.table(),
    }


def plot(found: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = sorted(found["series"]["aligned"])
    y, x = FIXED
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for name, style in (("unaligned", "--"), ("aligned", "-")):
        series = found["series"][name]
        label = "each segment normalised alone" if name == "unaligned" else "convert_segments (aligned)"
        top.plot(frames, [float(series[f][y, x]) for f in frames], style, label=label)
        steps = [float((series[f] - series[f - 1]).abs().mean()) for f in frames[1:]]
        bottom.plot(frames[1:], steps, style, label=label)
    for b in found["boundaries"]:
        for axis in (top, bottom):
            axis.axvline(b - 0.5, color="grey", lw=0.6, alpha=0.6)
    top.set_ylabel("disparity of a fixed plane (px)")
    top.set_title("Synthetic scene, known depth, a random affine depth distortion per segment (max_disp 20)")
    top.legend(loc="best", fontsize=8)
    bottom.set_ylabel("mean |change| from previous frame (px)")
    bottom.set_xlabel("frame (grey lines: segment boundaries)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="12,8,16", help="frames per segment, one run each")
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--plot", action="store_true", help="write docs/long-video-alignment.png (first run)")
    args = parser.parse_args()
    lengths, segments = (
        ([12], 3) if args.smoke else ([int(n) for n in args.lengths.split(",")], args.segments)
    )
    with tempfile.TemporaryDirectory() as tmp:
        inpainting = load_inpainting_pipeline(make_tiny_weights(Path(tmp) / "w"), device="cpu")
        rows = []
        for length in lengths:
            found = run(length, segments, Path(tmp), inpainting)
            if length == lengths[0]:
                print(found["table"])
                if args.plot:
                    plot(found, Path(__file__).resolve().parents[1] / "docs" / "long-video-alignment.png")
            found["plain_drift"] = run(length, segments, Path(tmp), inpainting, extrapolate=False)["drift"]
            rows.append(found)
    print(f"\nmean |disparity change| across each boundary, px (max_disp 20), {segments} segments a run")
    header = ("frames/segment", "boundary", "unaligned", "aligned", "true", "|aligned-true|")
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, (14, 8, 10, 8, 6, 14), strict=True)))
    for length, found in zip(lengths, rows, strict=True):
        for b, u, a, t in zip(
            found["boundaries"], found["unaligned"], found["aligned"], found["truth"], strict=True
        ):
            print(f"{length:>14} {b:>8} {u:>10.3f} {a:>8.3f} {t:>6.3f} {abs(a - t):>14.3f}")
    every = {k: [v for f in rows for v in f[k]] for k in ("unaligned", "aligned", "truth")}
    every["|aligned-true|"] = [abs(a - t) for a, t in zip(every["aligned"], every["truth"], strict=True)]
    print("summary: " + ", ".join(
        f"{k} mean {statistics.mean(v):.3f} max {max(v):.3f}" for k, v in every.items()))  # fmt: skip
    print("\ndisparity range over the video of a point whose depth never changes, px (true: 0)")
    for length, found in zip(lengths, rows, strict=True):
        print(f"{length:>3} frames/segment: unaligned {found['drift']['unaligned']:.3f}, aligned "
              f"{found['drift']['aligned']:.3f} (fitting the plain adjacent frames instead: "
              f"{found['plain_drift']['aligned']:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
