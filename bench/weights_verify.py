"""What verifying the weights costs at start-up: SHA-256 over a file of ``--gb`` gigabytes the first time
(no stamp) and again at a restart (the stamp answers), and MI-GAN's conversion from an ONNX pipeline
exported the published way at the published widths (the export itself is the test's, timed apart).

The figures scale to the real set: the service's files for every preset are about 7.8 GB
(``manifest.PUBLISHED``'s sizes, the unknown ones estimated by the weights' parameter counts).

    python -m bench.weights_verify           # 1 GB file, the 512 px MI-GAN export
    python -m bench.weights_verify --smoke   # 32 MB, a tiny MI-GAN: checks the script itself
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from stereocrafter.models.migan import PUBLISHED as MIGAN_512
from stereocrafter.models.migan import generator_from_state
from stereocrafter.models.migan_onnx import state_dict_from_onnx
from stereocrafter.testing.migan_export import export_pipeline
from stereocrafter.testing.weights import TINY_MIGAN, random_migan
from stereocrafter.weights.integrity import digest

REAL_SET_GB = 7.8  # every preset's files (README: 7.8 GB of weights resident)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    size = int((0.032 if args.smoke else args.gb) * 1e9)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        file = root / "owner" / "repo" / "weights.bin"
        file.parent.mkdir(parents=True)
        with open(file, "wb") as out:
            block = os.urandom(1 << 24)
            for _ in range(size // len(block) + 1):
                out.write(block)
        size = file.stat().st_size
        started = time.perf_counter()
        first = digest(root, "owner/repo/weights.bin")
        hashed = time.perf_counter() - started
        started = time.perf_counter()
        assert digest(root, "owner/repo/weights.bin") == first
        stamped = time.perf_counter() - started
        rate = size / hashed / 1e9
        print(f"sha256 of {size / 1e9:.2f} GB (page cache): {hashed:.2f} s, {rate:.2f} GB/s; "
              f"the real set ({REAL_SET_GB} GB) at this rate: {REAL_SET_GB / rate:.1f} s")  # fmt: skip
        print(f"a restart with the stamp: {stamped * 1e3:.2f} ms (no byte read)")

        arch = TINY_MIGAN if args.smoke else MIGAN_512
        generator = random_migan(arch, seed=1)
        started = time.perf_counter()
        onnx_file = export_pipeline(generator, root / "migan_pipeline_v2.onnx")
        exported = time.perf_counter() - started
        started = time.perf_counter()
        state = state_dict_from_onnx(onnx_file)
        converted = time.perf_counter() - started
        generator_from_state(state, "converted")
        print(f"MI-GAN {arch.resolution} px: ONNX pipeline {onnx_file.stat().st_size / 1e6:.1f} MB "
              f"(export {exported:.1f} s, the test's), converted to the state dict in {converted:.2f} s, "
              f"{len(state)} tensors")  # fmt: skip


if __name__ == "__main__":
    main()
