"""Command line: ``stereocrafter convert INPUT OUTPUT ...`` and ``stereocrafter doctor``.

``convert`` runs the whole conversion locally on the CPU or a GPU, with a progress bar per stage.
Everything a user can get wrong is checked before any model loads (minutes on a GPU): the options'
ranges, the preset, the output and grid paths (folder exists and is writable, supported suffix,
not a directory) and the input (probed, and its packets counted, so a truncated file is caught
now). Every user error is one line on stderr and exit status 2; an internal error is one line and
status 1, with the traceback under ``--verbose``. ``doctor`` prints what this machine and its
weights can do (the service logs the same lines at start-up).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, NoReturn

from stereocrafter.bounds import (
    DEFAULT_MAX_DISP,
    DEFAULT_MODE,
    DEFAULT_QUALITY,
    DEFAULT_SEED,
    ENCODERS,
    MODES,
    QUALITY,
    TILE_NUMS,
    check_max_disp,
    check_seed,
)
from stereocrafter.errors import StereoCrafterError
from stereocrafter.presets import PRESET_NAMES, check_preset

logger = logging.getLogger("stereocrafter")


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error in one line (``stereocrafter: error: ...``), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog.split()[0]}: error: {message} (see --help)\n")


def _conversion_options(parser: argparse.ArgumentParser) -> None:
    """What ``convert`` and ``convert-long`` share: the paths, the preset and its knobs (with
    bounds.py's defaults and choices), the device and the encoder."""
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path, help="output file (.mp4, .m4v, .mov or .mkv)")
    parser.add_argument("--mode", choices=MODES, default=DEFAULT_MODE)
    parser.add_argument(
        "--preset",
        help=f"conversion preset: {' | '.join(PRESET_NAMES)} (default: $STEREOCRAFTER_PRESET or reference)",
    )
    parser.add_argument("--weights-dir", type=Path, help="default: $WEIGHTS_DIR or /opt/ml/model/weights")
    parser.add_argument(
        "--max-disp", type=float, default=DEFAULT_MAX_DISP, help="disparity of the nearest point, px"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument(
        "--tile-num", type=int, choices=TILE_NUMS, default=1, help="inpainting tiles per axis"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if available")
    parser.add_argument(
        "--crf", type=int, default=DEFAULT_QUALITY,
        help=f"video quality, 0-51, lower is better: libx264's CRF, NVENC's CQ (default {DEFAULT_QUALITY})",
    )  # fmt: skip
    parser.add_argument(
        "--encoder", choices=ENCODERS,
        help="video encoder (default: $STEREOCRAFTER_ENCODER or auto: NVENC if the GPU has it, else libx264)",
    )  # fmt: skip
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks and library warnings")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="stereocrafter", description="2D to stereo 3D video conversion")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    convert = commands.add_parser("convert", help="convert a local video file")
    _conversion_options(convert)
    convert.add_argument("--save-grid", type=Path, help="also write the 2x2 debug grid video here")
    convert.add_argument(
        "--report", type=Path, help="write the quality report here (JSON; the contact sheet beside it, .png)"
    )
    long = commands.add_parser(
        "convert-long",
        help="convert a long video in segments with one depth scale (cut, depth, align, stereo, stitch)",
    )
    _conversion_options(long)
    long.add_argument("--segment-seconds", type=float, default=10.0, help="length of a segment (default 10)")
    long.add_argument("--workdir", type=Path, help="the segments' depth and video with their records, kept "
                      "(default: .OUTPUT.parts beside the output, removed once stitched)")  # fmt: skip
    long.add_argument("--no-reuse", action="store_true", help="convert again what a stopped run finished")
    long.add_argument("--plan", action="store_true", help="only run the depth passes and print the alignment")
    long.add_argument(
        "--no-align", action="store_true", help="normalise every segment alone (for comparison)"
    )
    doctor = commands.add_parser("doctor", help="what this machine and its weights can do")
    doctor.add_argument("--weights-dir", type=Path, help="default: $WEIGHTS_DIR or /opt/ml/model/weights")
    doctor.add_argument("--preset", help="the preset whose memory needs to compare with")
    doctor.add_argument("-v", "--verbose", action="store_true")
    return parser


def check_output_path(path: Path, what: str) -> None:
    """A file can be written at ``path``: a supported suffix, not a directory, in a folder that
    exists and is writable. ``StereoCrafterError`` saying which of these fails."""
    from stereocrafter.media.audio import OUTPUT_FORMATS

    if path.is_dir():
        raise StereoCrafterError(f"the {what} {path} is a directory; give a file name")
    if path.suffix.lower() not in OUTPUT_FORMATS:
        suffixes = ", ".join(sorted(OUTPUT_FORMATS))
        raise StereoCrafterError(f"the {what} {path} has the suffix {path.suffix!r}; use one of {suffixes}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise StereoCrafterError(f"the folder {folder} of the {what} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise StereoCrafterError(f"the folder {folder} of the {what} is not writable")


def check_report_path(path: Path) -> None:
    if path.suffix.lower() != ".json" or path.is_dir():
        raise StereoCrafterError(f"--report {path} must name a .json file (the .png goes beside it)")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise StereoCrafterError(f"the folder {folder} of the report does not exist or is not writable")


def check_options(args: argparse.Namespace) -> None:
    if not QUALITY[0] <= args.crf <= QUALITY[1]:
        raise StereoCrafterError(f"--crf must be in {QUALITY[0]}-{QUALITY[1]}, got {args.crf}")
    try:  # bounds.py: the request schema and StereoConfig check the same (the preset: _prepare)
        check_max_disp(args.max_disp, "--max-disp")
        check_seed(args.seed, "--seed")
    except ValueError as err:
        raise StereoCrafterError(str(err)) from None


def run_convert(args: argparse.Namespace) -> int:
    # 1. Everything the user controls, before anything heavy is imported or loaded.
    check_options(args)
    if not args.input.is_file():
        raise StereoCrafterError(f"no such input file: {args.input}")
    check_output_path(args.output, "output")
    if args.command == "convert-long":
        return run_convert_long(args)
    if args.save_grid is not None:
        check_output_path(args.save_grid, "grid")
        if args.save_grid.resolve() == args.output.resolve():
            raise StereoCrafterError("--save-grid must differ from the output")
    if args.output.resolve() == args.input.resolve():
        raise StereoCrafterError("the output must differ from the input (it would be overwritten)")
    if args.report is not None:
        check_report_path(args.report)

    pipeline, job, progress = _prepare(args)

    from stereocrafter.jobs.local import convert_file
    from stereocrafter.jobs.report import QualityReport
    from stereocrafter.pipeline.types import RunHooks

    tiny, preset = pipeline.tiny, job.config.preset
    report = QualityReport() if args.report is not None else None
    try:
        result = convert_file(
            pipeline,
            args.input,
            args.output,
            mode=args.mode,
            job=job,
            hooks=RunHooks(progress=progress, observer=report),
            grid_path=args.save_grid,
        )
    finally:  # an error message must not land in the middle of a bar's line
        progress.close()
    job.timings.update(result.timings)
    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items())
    print(
        f"wrote {result.output}: {result.mode} ({preset} preset), {result.width}x{result.height}, "
        f"{result.num_frames} frames at {result.fps} fps{', audio kept' if result.has_audio else ''} "
        f"({timing}); encoder {job.encoding.label()}; stereo tag {result.stereo_tag or 'none'}"
    )
    if report is not None:  # the conversion stands whatever happens here
        from stereocrafter.jobs.publish import write_report

        png = args.report.with_suffix(".png")
        try:
            write_report(report, job, args.report, png, result.encoder, result.stereo_tag)
            print(f"report: {args.report} and {png}")
        except Exception as err:
            print(f"stereocrafter: warning: no report written ({type(err).__name__}: {err})", file=sys.stderr)
    if tiny:
        print(
            "NOTE: made with tiny random test weights: the depth and inpainting are noise, not a conversion"
        )
    return 0


def _prepare(args: argparse.Namespace) -> tuple[Any, Any, ProgressBars]:
    """The checks both conversions share after the paths: settings, the run config (resolved
    once), input, device, the encoder; then the models. Returns (pipeline, the job's context,
    progress callback)."""
    from stereocrafter.media.video_io import check_packets, probe

    info = probe(args.input)
    check_packets(args.input, info)  # a truncated file fails now, before torch and the models load
    settings = _settings(args.device)
    from stereocrafter.config import resolve

    try:  # the run config, resolved once: the preset checked here (no torch yet)
        config = resolve(
            args.preset, settings, max_disp=args.max_disp, seed=args.seed, tile_num=args.tile_num
        )
    except ValueError as err:
        raise StereoCrafterError(str(err)) from None
    _quiet_libraries(args)

    import torch

    device = settings.device

    from stereocrafter.pipeline.loading import load_stereo_pipeline

    if device == "cuda" and not torch.cuda.is_available():
        raise StereoCrafterError("--device cuda was asked for but no CUDA device is available")
    from stereocrafter.media.encoders import choose_encoder

    # a named NVENC encoder that cannot open: an error now, before the models load
    if args.encoder is not None:
        encoder = choose_encoder(args.encoder, "--encoder")
    else:
        encoder = choose_encoder(settings.encoder)
    from stereocrafter.jobs.context import Encoding, Job

    weights_dir = args.weights_dir or settings.weights_dir
    pipeline = load_stereo_pipeline(weights_dir, device=device, config=config, presets=(config.preset,))
    job = Job(config=config, settings=settings, encoding=Encoding(encoder, args.crf), tiny=pipeline.tiny,
              made_by=pipeline.provenance)  # fmt: skip
    return pipeline, job, ProgressBars(args.quiet)


def _quiet_libraries(args: argparse.Namespace) -> None:
    """Silence the model libraries' known noise (``models.thirdparty``) unless ``--verbose``; only
    once the models are about to load: it imports transformers, seconds that --help and an
    argument error must not wait for."""
    if not args.verbose:
        from stereocrafter.models.thirdparty import quiet_known_messages

        quiet_known_messages()


def _settings(device: str | None = None) -> Any:
    """``Settings`` from the environment, with ``--device`` (when given) over STEREOCRAFTER_DEVICE
    and over the detection (which imports torch: only when it is needed)."""
    from stereocrafter.settings import load_settings

    def detect() -> str:
        from stereocrafter.serving.gpu import default_device

        return default_device()

    environ = dict(os.environ, STEREOCRAFTER_DEVICE=device) if device else None
    try:
        return load_settings(environ, default_device=detect)
    except ValueError as err:  # a bad STEREOCRAFTER_* variable
        raise StereoCrafterError(str(err)) from None


class ProgressBars:
    """The ``Progress`` callback of the CLI: one tqdm bar per stage, a new one when a stage starts
    again (the next segment of ``convert-long``); ``close()`` before printing anything else."""

    LABELS: ClassVar[dict[str, str]] = {"depth": "1/2 depth", "inpainting": "2/2 inpainting"}

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None or (done == 0 and bar.n):  # created when the stage starts: its clock is the stage's
            self.close()
            label = self.LABELS.get(stage, stage)
            bar = self.bars[stage] = tqdm(total=total, desc=f"{label:15s}", unit="frame", leave=True)
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def run_convert_long(args: argparse.Namespace) -> int:
    import shutil

    from stereocrafter.media.stitch import check_stitchable

    if not args.segment_seconds > 0:
        raise StereoCrafterError(f"--segment-seconds must be > 0, got {args.segment_seconds:g}")
    if args.output.resolve() == args.input.resolve():
        raise StereoCrafterError("the output must differ from the input (it would be overwritten)")
    if args.workdir is not None and not args.workdir.is_dir():
        raise StereoCrafterError(f"--workdir {args.workdir} is not a folder")
    if args.plan and args.no_align:
        raise StereoCrafterError("--plan shows the alignment; it cannot be combined with --no-align")
    # The output's container must take the video and the source's audio: known now, not after
    # every segment has been converted.
    planned_audio = check_stitchable(args.output, args.input)
    # A stable folder, kept until the film is stitched: a run that was stopped or killed leaves its
    # finished segments (hours of GPU time) there, and the next run reuses them (``jobs.records``).
    workdir = args.workdir or args.output.parent / f".{args.output.name}.parts"
    if workdir.exists() and not workdir.is_dir():
        raise StereoCrafterError(f"the work folder {workdir} is a file; remove it or pass --workdir")
    pipeline, job, progress = _prepare(args)

    from stereocrafter.long.local import convert_long

    workdir.mkdir(exist_ok=True)
    try:
        done = convert_long(
            pipeline, args.input, args.output, segment_seconds=args.segment_seconds, workdir=workdir,
            mode=args.mode, align=not args.no_align, plan_only=args.plan, reuse=not args.no_reuse,
            encoding=job.encoding, progress=progress, log=lambda line: print(line, file=sys.stderr),
        )  # fmt: skip
    finally:
        progress.close()  # an error message must not land in the middle of a bar's line
    if args.workdir is None and done.stitched is not None:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{len(done.segments)} segments of about {args.segment_seconds:g} s ({job.config.preset} preset); "
          f"encoder {job.encoding.label()}")  # fmt: skip
    if done.result is not None:
        print(done.result.alignment.table())
    if done.stitched is not None:
        s = done.stitched
        print(f"wrote {s.output}: {args.mode}, {s.frames} frames ({' + '.join(map(str, s.segment_frames))}), "
              f"audio: {s.audio}, stereo tag {s.stereo_tag or 'none'}")  # fmt: skip
        for why in s.dropped:
            print(f"stereocrafter: warning: {why}", file=sys.stderr)
        if done.result is not None:
            print(f"{done.result.reuse_line()}; {done.result.cost_line()}")
    elif args.plan:
        print(f"audio when stitched: {planned_audio}; the depths are kept in {workdir} for the conversion")
    if pipeline.tiny:
        print(
            "NOTE: made with tiny random test weights: the depth and inpainting are noise, not a conversion"
        )
    return 0


def run_doctor(args: argparse.Namespace) -> int:
    _quiet_libraries(args)
    from stereocrafter.doctor import diagnose

    settings = _settings()
    if args.preset is not None:
        try:
            check_preset(args.preset)
        except ValueError as err:
            raise StereoCrafterError(str(err)) from None
    for line in diagnose(settings, args.weights_dir, args.preset, list_missing=True, digests=True):
        print(line)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_doctor(args) if args.command == "doctor" else run_convert(args)
    except StereoCrafterError as err:
        print(f"stereocrafter: error: {err.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"stereocrafter: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stereocrafter: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as err:
        if args.verbose:
            traceback.print_exc()
        text = str(err).strip().splitlines()
        first = text[0][:300] if text else ""
        print(
            f"stereocrafter: internal error: {type(err).__name__}: {first} (--verbose shows where)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
