"""``jobs.local``: the local jobs on files under a job's context (``jobs.context.Job``)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import DeadlineExceededError
from stereocrafter.jobs.context import Job
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from tests.support.stops import Calls


def test_a_stop_during_the_final_encode_leaves_no_file(depth_pipeline, inpainting_pipeline,
                                                       tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """The last chunk is composed, then the deadline passes while the encoder drains and flushes
    (seconds for a wide 1080p picture): the job stops there, and no file appears, then or after."""
    from stereocrafter.jobs.local import convert_file
    from stereocrafter.testing.media import make_video, scene_frames

    # 8 frames of video and 40 s of PCM: at the finish the writer transcodes the rest of the
    # audio to AAC, a second or more here, so the finish is certainly under way when checked
    source = make_video(tmp_path / "in.mkv", scene_frames(8, 48, 32), fps=12, audio_codec="pcm_s16le",
                        audio_seconds=40)  # fmt: skip
    pipeline = StereoPipeline(
        depth_pipeline, inpainting_pipeline, StereoConfig(depth_steps=1, inpaint_steps=1)
    )
    composed: list[int] = []

    class LastChunk:
        def on_start(self, **_: object) -> None:
            pass

        def on_frames(self, start: int, left: torch.Tensor, *_: object) -> None:
            composed.append(start + left.shape[0])

    def check() -> None:
        if composed and composed[-1] == 8:  # every frame composed: only the encode's finish is left
            raise DeadlineExceededError("the deadline passed (test)")

    out = tmp_path / "out" / "sbs.mp4"
    out.parent.mkdir()
    with pytest.raises(DeadlineExceededError, match=r"\(test\)"):
        job = Job(config=pipeline.config, stop=Calls(check))
        convert_file(pipeline, source, out, mode="sbs", job=job, hooks=RunHooks(observer=LastChunk()))
    assert not out.exists()
    deadline = time.monotonic() + 30  # the abandoned finish ends in its thread and removes its file
    while list(out.parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(out.parent.iterdir()) == []
