"""``media.encode``: the writer (libx264 veryfast at CRF 18 by default, BT.709 tags, the index in
front), atomic: nothing is left after a failed or killed write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import av
import pytest

from stereocrafter.media.encode import VideoWriter
from stereocrafter.testing.media import psnr, scene_frames
from tests.support.video import read_all, write

# --- round trips ---------------------------------------------------------------------------


def test_the_default_encoder_is_libx264_veryfast_at_crf_18(tmp_path: Path) -> None:
    """What x264 itself writes into the stream (its settings SEI) and what it costs in quality:
    veryfast (subme=2, ref=1, no trellis) at CRF 18 unless a preset or quality is named."""
    frames = scene_frames(30, 160, 96)
    out = write(tmp_path / "default.mp4", frames)
    settings = out.read_bytes()
    assert b"crf=18.0" in settings and b"subme=2" in settings and b" ref=1 " in settings
    assert psnr(read_all(out), frames) >= 35.0  # 36.2-38.7 dB at 24-60 fps here; medium +2.5 dB
    named = write(tmp_path / "named.mp4", frames, preset="medium", crf=23).read_bytes()
    assert b"crf=23.0" in named and b"subme=7" in named and b" ref=3 " in named


def test_writer_tags_bt709_and_puts_the_index_first(tmp_path: Path) -> None:
    out = write(tmp_path / "out.mp4", scene_frames(5, 64, 48))
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (1, 1, 1)
        assert int(ctx.color_range) == 1  # limited ("tv") range
    # faststart: the moov box precedes the media data, so a player can start from S3 at once.
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.mp4"
    with (
        pytest.raises(RuntimeError, match="boom"),
        VideoWriter(target, fps=24, width=64, height=48) as writer,
    ):
        writer.write(scene_frames(5, 64, 48))
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_output(tmp_path: Path) -> None:
    """A process killed mid-write (SIGKILL: no cleanup at all) never leaves a file at the path."""
    target = tmp_path / "out.mp4"
    started = tmp_path / "started"
    script = textwrap.dedent(
        f"""
        import time, numpy as np
        from pathlib import Path
        from stereocrafter.media.encode import VideoWriter
        with VideoWriter({str(target)!r}, fps=24, width=64, height=48) as writer:
            for i in range(10_000):
                writer.write(np.full((1, 48, 64, 3), i % 255, np.uint8))
                if i == 5:
                    Path({str(started)!r}).touch()
                time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=Path(__file__).parents[2])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None, "writer process exited early"
            assert time.monotonic() < deadline, "writer never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert not target.exists()
    # Only a hidden temporary file may be left behind (libav may not have created it yet).
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "started"]
    assert all(name.startswith(".out.") and ".partial" in name for name in leftovers), leftovers
