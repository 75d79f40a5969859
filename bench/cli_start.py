"""How fast the CLI answers before any model work: ``stereocrafter --help`` and an argument error,
against ``python -c pass`` (the interpreter's own start), each run as a fresh process.

Also reports which heavy libraries each command imported (``-X importtime``): the entry points
import torch, diffusers and PyAV lazily, so neither command should load any of them.

    python -m bench.cli_start            # 15 runs of each command, median and spread
    python -m bench.cli_start --smoke    # 3 runs: checks the script itself
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "diffusers", "transformers", "av", "boto3", "httpx")


def commands(tmp: Path) -> dict[str, list[str]]:
    script = Path(sys.executable).parent / "stereocrafter"  # the installed console script
    cli = [str(script)] if script.is_file() else [sys.executable, "-m", "stereocrafter.cli"]
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "stereocrafter --help": [*cli, "--help"],
        "stereocrafter convert --help": [*cli, "convert", "--help"],
        # a user error the CLI answers before it probes the input or imports anything heavy
        "stereocrafter convert --crf 99 (error)": [
            *cli,
            "convert",
            str(tmp / "in.mp4"),
            str(tmp / "o.mp4"),
            "--crf",
            "99",
        ],
    }


def heavy_imports(command: list[str]) -> list[str]:
    """The heavy top-level packages ``command`` imported (from ``-X importtime``'s log)."""
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    )
    seen = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name.split(".")[0] in HEAVY:
                seen.add(name.split(".")[0])
    return sorted(seen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="3 runs per command")
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    runs = 3 if args.smoke else args.runs
    print(f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}, "
          f"{len(os.sched_getaffinity(0))} CPUs; {runs} runs per command")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        for name, command in commands(Path(tmp)).items():
            seconds = []
            for _ in range(runs):
                started = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True)
                seconds.append(time.perf_counter() - started)
                if name.endswith("(error)") != (done.returncode == 2) or (
                    not name.endswith("(error)") and done.returncode != 0
                ):
                    raise SystemExit(f"{name}: exit status {done.returncode}: {done.stderr[-500:]}")
            heavy = heavy_imports(command)
            print(
                f"{name:40s} median {statistics.median(seconds) * 1000:6.0f} ms, "
                f"min {min(seconds) * 1000:5.0f}, max {max(seconds) * 1000:5.0f}; "
                f"heavy imports: {', '.join(heavy) or 'none'}"
            )
            if name.startswith("stereocrafter") and heavy:
                raise SystemExit(f"{name} imported {heavy}: the CLI's --help must stay light")


if __name__ == "__main__":
    main()
