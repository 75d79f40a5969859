"""``pipeline.progress``: the job's stop check runs through the progress hooks, after every UNet
call (a deadline stops the pipeline at the next one) and before every VAE decode."""

from __future__ import annotations

import time

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import DeadlineExceededError
from stereocrafter.guard import Deadline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from tests.support.stops import Calls


def test_a_deadline_stops_the_pipeline_at_the_next_unet_call(depth_pipeline, inpainting_pipeline) -> None:  # type: ignore[no-untyped-def]
    pipeline = StereoPipeline(
        depth_pipeline, inpainting_pipeline, StereoConfig(depth_steps=2, inpaint_steps=2)
    )
    frames = (torch.rand(8, 32, 48, 3) * 255).to(torch.uint8).numpy()
    calls: list[float] = []
    deadline = Deadline(0.0, since=time.monotonic() + 3600, why=" (test)")  # not yet: 3600 s ahead

    def check() -> None:
        calls.append(deadline.remaining)
        if len(calls) == 3:  # the third UNet call passes the deadline
            deadline.since = time.monotonic() - 1.0
        deadline.check()

    written: list[object] = []
    with pytest.raises(DeadlineExceededError, match=r"deadline of 0 s \(test\)"):
        pipeline.run(lambda: iter([frames]), written.append, num_frames=8, width=48, height=32,
                     hooks=RunHooks(stop=Calls(check)))  # fmt: skip
    assert len(calls) == 3 and written == []  # stopped inside the depth stage, nothing composed


def test_the_check_also_runs_before_every_vae_decode(depth_pipeline, inpainting_pipeline) -> None:  # type: ignore[no-untyped-def]
    """The decode of a chunk runs after its last UNet call (12 temporal-decoder calls per chunk
    at 1080p, seconds on a GPU): the job's check must run before each of them too."""
    pipeline = StereoPipeline(
        depth_pipeline, inpainting_pipeline, StereoConfig(depth_steps=1, inpaint_steps=1)
    )
    frames = (torch.rand(8, 32, 48, 3) * 255).to(torch.uint8).numpy()
    events: list[str] = []
    hooks = [
        unet.register_forward_hook(lambda *_: events.append("U"))
        for unet in {id(u): u for u in (depth_pipeline.unet, inpainting_pipeline.unet)}.values()
    ] + [
        vae.decoder.register_forward_hook(lambda *_: events.append("D"))
        for vae in {id(v): v for v in (depth_pipeline.vae, inpainting_pipeline.vae)}.values()
    ]
    try:
        pipeline.run(lambda: iter([frames]), lambda _: None, num_frames=8, width=48, height=32,
                     hooks=RunHooks(stop=Calls(lambda: events.append("C"))))  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
    pattern = "".join(events)
    assert pattern.count("D") >= 5, pattern  # the depth window's decode, then 2 frames a call
    assert "DD" not in pattern and "UD" not in pattern, pattern  # a check before every decode


def test_progress_counts_whole_frames_from_the_model_s_calls() -> None:
    from stereocrafter.pipeline.progress import StageProgress

    seen: list[tuple[str, int, int]] = []
    module = torch.nn.Identity()
    progress = StageProgress(lambda *r: seen.append(r), "depth", 5, [1.5, 1.5, 2.0])
    with progress.watching(module):
        for _ in range(3):
            module(torch.zeros(1))
    progress.finish()
    assert seen == [("depth", 0, 5), ("depth", 1, 5), ("depth", 2, 5), ("depth", 3, 5), ("depth", 4, 5),
                    ("depth", 5, 5)]  # fmt: skip
