"""Command line: ``stereocrafter convert INPUT OUTPUT --mode anaglyph|sbs|...``.

Runs the whole conversion locally on the CPU or a GPU, with a progress bar. Errors that a user can
fix (missing weights, an unreadable video, bad options) print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from stereocrafter.compose import MODES
from stereocrafter.errors import StereoCrafterError
from stereocrafter.presets import PRESET_NAMES

logger = logging.getLogger("stereocrafter")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stereocrafter", description="2D to stereo 3D video conversion")
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="convert a local video file")
    convert.add_argument("input", type=Path)
    convert.add_argument("output", type=Path, help="output file (.mp4, .mov or .mkv)")
    convert.add_argument("--mode", choices=MODES, default="anaglyph")
    convert.add_argument(
        "--preset",
        help=f"conversion preset: {' | '.join(PRESET_NAMES)} (default: $STEREOCRAFTER_PRESET or reference)",
    )
    convert.add_argument("--weights-dir", type=Path, help="default: $WEIGHTS_DIR or /opt/ml/model/weights")
    convert.add_argument("--max-disp", type=float, default=20.0, help="disparity of the nearest point, px")
    convert.add_argument("--seed", type=int, default=42)
    convert.add_argument(
        "--tile-num", type=int, choices=(1, 2, 4), default=1, help="inpainting tiles per axis"
    )
    convert.add_argument("--save-grid", type=Path, help="also write the 2x2 debug grid video here")
    convert.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    convert.add_argument("--crf", type=int, default=18, help="H.264 quality, 0-51 (lower is better)")
    convert.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    return parser


def run_convert(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from stereocrafter.convert import convert_file, job_config
    from stereocrafter.loading import is_tiny, load_stereo_pipeline
    from stereocrafter.settings import load_settings
    from stereocrafter.video_io import probe

    settings = load_settings()
    weights_dir = args.weights_dir or settings.weights_dir
    device = args.device or settings.device
    if device == "cuda" and not torch.cuda.is_available():
        raise StereoCrafterError("--device cuda was asked for but no CUDA device is available")
    if args.preset is not None and args.preset not in PRESET_NAMES:
        raise StereoCrafterError(f"unknown preset {args.preset!r}; choose one of {', '.join(PRESET_NAMES)}")
    preset = args.preset or settings.preset
    config = job_config(preset, settings, max_disp=args.max_disp, seed=args.seed, tile_num=args.tile_num)
    if not args.input.is_file():
        raise StereoCrafterError(f"no such input file: {args.input}")
    probe(args.input)  # a bad video fails here, before minutes of model loading
    pipeline = load_stereo_pipeline(weights_dir, device=device, config=config)
    tiny = is_tiny(weights_dir)
    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if args.quiet:
            return
        bar = bars.get(stage)
        if bar is None:
            for finished in bars.values():
                finished.close()
            bar = bars[stage] = tqdm(total=total, desc=f"{stage:10s}", unit="frame", leave=True)
        bar.update(done - bar.n)

    result = convert_file(
        pipeline,
        args.input,
        args.output,
        mode=args.mode,
        progress=progress,
        grid_path=args.save_grid,
        crf=args.crf,
    )
    for bar in bars.values():
        bar.close()
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    print(
        f"wrote {result.output}: {result.mode} ({preset} preset), {result.width}x{result.height}, "
        f"{result.num_frames} frames "
        f"at {result.fps} fps{', audio kept' if result.has_audio else ''} ({timing})"
    )
    if tiny:
        print(
            "NOTE: made with tiny random test weights: the depth and inpainting are noise, not a conversion"
        )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_convert(args)
    except StereoCrafterError as err:
        print(f"stereocrafter: error: {err.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"stereocrafter: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
