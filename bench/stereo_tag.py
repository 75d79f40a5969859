"""What the stereo tag costs: ``stereotag.tag_file`` on a finished MP4, against the file's size, and
reading it back. The tag grows the moov by 13 bytes, so the file is rewritten once whether the moov
comes first (the service's outputs: every chunk offset moves) or last (a stitched film, as here).

A short side-by-side clip is encoded once and stitched (stream copy) into a long file of about
``--mb`` megabytes; the tag is written into a copy and timed, with the read-back (``read_layout``)
and ffprobe's view when ffprobe is installed.

    python -m bench.stereo_tag            # about 200 MB
    python -m bench.stereo_tag --smoke    # about 5 MB: checks the script itself
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.stereotag import read_layout, tag_file
from stereocrafter.media.stitch import stitch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args(argv)
    target = 5.0 if args.smoke else args.mb
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        clip = work / "clip.mp4"
        rng = np.random.default_rng(0)
        with VideoWriter(clip, fps=24, width=640, height=180, crf=30) as writer:
            writer.write(rng.integers(0, 256, (48, 180, 640, 3), dtype=np.uint8))  # noise: about 1 MB
        copies = max(1, round(target * 1e6 / clip.stat().st_size))
        long = stitch([clip] * copies, work / "long.mp4")
        film = work / "film.mp4"
        shutil.copy(long.output, film)
        size = film.stat().st_size / 1e6
        started = time.perf_counter()
        tag_file(film, "left_right")
        tagged = time.perf_counter() - started
        started = time.perf_counter()
        layout = read_layout(film)
        read = time.perf_counter() - started
        started = time.perf_counter()
        tag_file(film, "top_bottom")  # a tag already there: one byte rewritten in place
        again = time.perf_counter() - started
        print(f"file: {size:.1f} MB, {long.frames} frames ({copies} copies of a 48-frame 640x180 clip)")
        print(f"tag_file (the moov grows by 13 bytes, the rest copied): {tagged * 1000:.1f} ms, "
              f"{size / tagged:.0f} MB/s")  # fmt: skip
        print(f"read_layout: {read * 1000:.2f} ms -> {layout}; "
              f"a second tag_file (in place): {again * 1000:.2f} ms")  # fmt: skip
        probe = shutil.which("ffprobe")
        if probe is not None:
            command = [
                probe,
                "-v",
                "error",
                "-select_streams",
                "v:0",
                "-show_streams",
                "-of",
                "json",
                str(film),
            ]
            out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
            sides = json.loads(out)["streams"][0].get("side_data_list", [])
            print(f"ffprobe: {[d.get('type') for d in sides if d.get('side_data_type') == 'Stereo 3D']}")


if __name__ == "__main__":
    main()
