"""``testing.media``: test media made with PyAV's own encoders, checked by decoding them back."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from stereocrafter.media.video_io import probe
from stereocrafter.testing.media import audio_duration, make_video, scene_frames


def test_a_scene_encodes_with_its_audio_and_frame_rate(tmp_path: Path) -> None:
    frames = scene_frames(12, 64, 48)
    assert frames.shape == (12, 48, 64, 3) and frames.std() > 10  # textured, not flat
    path = make_video(tmp_path / "a.mp4", frames, fps=Fraction(24000, 1001), audio_codec="aac")
    info = probe(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (12, 64, 48, Fraction(24000, 1001))
    assert info.has_audio and abs(audio_duration(path) - 12 * 1001 / 24000) < 0.05
