"""GPU failure handling that a CPU machine can check: the device check, the classification of
CUDA errors, the checked VAE decode with an injected overflow, deadlines inside the pipeline, and
the fault injector itself."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from stereocrafter.config import StereoConfig
from stereocrafter.errors import DeadlineExceededError, DeviceUnavailableError, NonFiniteOutputError
from stereocrafter.guard import Deadline
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.pipeline.types import RunHooks
from stereocrafter.serving.faults import Faults
from stereocrafter.serving.gpu import check_device, classify, device_lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA (what it tests)")
def test_cuda_asked_for_without_a_device_is_an_error_not_the_cpu() -> None:
    with pytest.raises(DeviceUnavailableError) as caught:
        check_device("cuda")
    message = caught.value.message
    assert "STEREOCRAFTER_DEVICE=cuda" in message and "NVIDIA driver" in message
    assert f"torch {torch.__version__}" in message and "built for CUDA" in message
    assert caught.value.status == 503
    check_device("cpu")  # asked for, and there
    assert device_lines("cpu") == [f"device: cpu (torch {torch.__version__})"]


def test_cuda_errors_are_classified() -> None:
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "oom"
    assert classify(RuntimeError("CUDA error: out of memory")) == "oom"
    sticky = [
        "CUDA error: an illegal memory access was encountered",
        "CUDA error: uncorrectable ECC error encountered",
        "CUDA error: unspecified launch failure",
        "device-side assert triggered",
    ]
    for text in sticky:
        assert classify(torch.AcceleratorError(text)) == "fatal", text
        assert classify(RuntimeError(text)) == "fatal", text
    assert classify(ValueError("an illegal memory access")) is None  # not from CUDA
    assert classify(RuntimeError("shapes cannot be multiplied")) is None


def test_the_fault_file_is_consumed_one_line_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "faults"
    faults = Faults(path)
    assert not faults.take("oom")  # no file: nothing pending
    path.write_text("overflow\noom\noverflow\n")
    assert not faults.take("cuda_fatal")
    assert faults.take("overflow") and faults.take("oom") and not faults.take("oom")
    assert path.read_text() == "overflow\n"


def _depth(pipeline, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return pipeline(frames, num_inference_steps=1, window_size=8, overlap=2, decode_chunk_size=4)


def test_a_non_finite_decode_is_retried_and_gives_the_same_depth(depth_pipeline) -> None:  # type: ignore[no-untyped-def]
    frames = torch.rand(6, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    clean = _depth(depth_pipeline, frames)
    calls = {"n": 0}

    def overflow_once(_module, _inputs, output):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        return torch.full_like(output, float("inf")) if calls["n"] == 1 else None

    handle = depth_pipeline.vae.decoder.register_forward_hook(overflow_once)
    try:
        retried = _depth(depth_pipeline, frames)
    finally:
        handle.remove()
    assert calls["n"] == 3  # 2 chunks of decoding, the first decoded twice
    assert torch.equal(retried, clean)  # without the check, inf would clamp to a white (1.0) depth


def test_a_decode_that_stays_non_finite_is_a_typed_error(depth_pipeline) -> None:  # type: ignore[no-untyped-def]
    handle = depth_pipeline.vae.decoder.register_forward_hook(
        lambda _m, _i, output: torch.full_like(output, float("nan"))
    )
    try:
        with pytest.raises(NonFiniteOutputError, match="in float32 too"):
            _depth(depth_pipeline, torch.rand(4, 3, 64, 64))
    finally:
        handle.remove()
    assert next(depth_pipeline.vae.decoder.parameters()).dtype == torch.float32  # restored


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
                     hooks=RunHooks(check=check))  # fmt: skip
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
                     hooks=RunHooks(check=lambda: events.append("C")))  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
    pattern = "".join(events)
    assert pattern.count("D") >= 5, pattern  # the depth window's decode, then 2 frames a call
    assert "DD" not in pattern and "UD" not in pattern, pattern  # a check before every decode


def test_a_stop_during_the_final_encode_leaves_no_file(depth_pipeline, inpainting_pipeline,
                                                       tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # fmt: skip
    """The last chunk is composed, then the deadline passes while the encoder drains and flushes
    (seconds for a wide 1080p picture): the job stops there, and no file appears, then or after."""
    from stereocrafter.jobs.local import convert_file
    from tests.media import make_video, scene_frames

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
        convert_file(pipeline, source, out, mode="sbs", hooks=RunHooks(observer=LastChunk(), check=check))
    assert not out.exists()
    deadline = time.monotonic() + 30  # the abandoned finish ends in its thread and removes its file
    while list(out.parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(out.parent.iterdir()) == []


def test_one_slot_per_visible_gpu() -> None:
    from stereocrafter.serving.gpu import slot_devices

    assert slot_devices("cuda", None, gpu_count=4) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert slot_devices("cuda", 2, gpu_count=8) == ["cuda:0", "cuda:1"]
    assert slot_devices("cuda", None, gpu_count=1) == ["cuda:0"]
    with pytest.raises(DeviceUnavailableError, match="STEREOCRAFTER_SLOTS=3 but only 2 GPUs"):
        slot_devices("cuda", 3, gpu_count=2)
    with pytest.raises(DeviceUnavailableError, match="no CUDA device"):
        slot_devices("cuda", None, gpu_count=0)
    assert slot_devices("cpu", None) == ["cpu"] and slot_devices("cpu", 2) == ["cpu", "cpu"]
    with pytest.raises(ValueError, match=">= 1"):
        slot_devices("cpu", 0)


def test_the_pool_gives_each_job_a_free_slot() -> None:
    import threading

    from stereocrafter.serving.pool import PipelinePool, Slot

    pool = PipelinePool([Slot(0, "cuda:0", "p0"), Slot(1, "cuda:1", "p1")])
    held: list[int] = []
    with pool.acquire() as a, pool.acquire() as b:
        held += [a.index, b.index]
        assert pool.free == 0
        waiter_got: list[int] = []
        waiter = threading.Thread(target=lambda: waiter_got.append(pool.acquire().__enter__().index))
        waiter.start()
        waiter.join(0.2)
        assert waiter.is_alive()  # no slot free: it waits
    waiter.join(5)
    assert sorted(held) == [0, 1] and waiter_got and waiter_got[0] in (0, 1)
