"""The video encoder chosen for the machine (``media.encoders``): ``auto`` falls back to libx264
where NVENC does not open (here: no driver), a named NVENC encoder that cannot open is an error at
start-up, and the probe that decides is the real open-and-encode of a frame. The NVENC path itself
is marked ``gpu`` (and run by bench/gpu_check.sh); A100, H100 and H200 have no NVENC, so there it
is skipped with FFmpeg's reason."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from stereocrafter.errors import EncoderUnavailableError
from stereocrafter.media import encoders
from stereocrafter.media.encode import VideoWriter
from stereocrafter.media.encoders import LIBX264, Encoder, choose_encoder, nvenc_problem
from stereocrafter.media.video_io import iter_frames, probe
from stereocrafter.settings import load_settings
from stereocrafter.testing.media import psnr, scene_frames

NO_NVENC = nvenc_problem("h264_nvenc")


@pytest.mark.skipif(NO_NVENC is None, reason="this machine's NVENC opens: the fallback is not taken")
def test_auto_falls_back_to_libx264_and_says_why() -> None:
    chosen = choose_encoder("auto")
    assert (chosen.codec, chosen.requested, chosen.preset) == ("libx264", "auto", "veryfast")
    assert chosen.fallback == f"h264_nvenc is not usable here: {NO_NVENC}"
    assert chosen.describe(20) == {"codec": "libx264", "preset": "veryfast", "crf": 20, "requested": "auto",
                                   "fallback": chosen.fallback}  # fmt: skip
    assert chosen.label() == f"libx264 (preset veryfast, CRF 18; auto fell back: {chosen.fallback})"


def test_each_slot_s_nvenc_session_opens_on_its_own_gpu() -> None:
    """FFmpeg's NVENC opens GPU 0 unless told (``gpu``): a slot on cuda:3 must encode on card 3."""
    from stereocrafter.serving.pool import PipelinePool, Slot

    pool = PipelinePool([Slot(i, f"cuda:{i}", None) for i in range(4)], Encoder("h264_nvenc", "auto"))
    for slot in pool.slots:
        encoder = pool.encoder_for(slot)
        assert encoder.options()["gpu"] == str(slot.index) and encoder.describe()["gpu"] == slot.index
    assert Encoder("h264_nvenc", "auto").for_device("cuda").gpu == 0
    assert "gpu" not in Encoder("h264_nvenc", "auto").options()  # the CLI on one card: FFmpeg's default
    assert LIBX264.for_device("cuda:2") is LIBX264 and "gpu" not in LIBX264.options()
    assert Encoder("h264_nvenc", "auto").for_device("cpu").gpu is None


@pytest.mark.skipif(NO_NVENC is None, reason="this machine's NVENC opens")
@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_a_named_nvenc_encoder_that_cannot_open_is_an_error(codec: str) -> None:
    with pytest.raises(EncoderUnavailableError) as caught:
        choose_encoder(codec)
    assert caught.value.message.startswith(f"STEREOCRAFTER_ENCODER {codec}: {codec} cannot be opened here: ")
    assert "use auto or libx264" in caught.value.message


def test_libx264_is_taken_without_a_probe_and_names_are_checked() -> None:
    assert choose_encoder("libx264") is LIBX264 and LIBX264.fallback is None
    with pytest.raises(ValueError, match="STEREOCRAFTER_ENCODER must be one of auto, libx264, h264_nvenc"):
        choose_encoder("nvenc")
    with pytest.raises(ValueError, match="not an NVENC encoder"):
        nvenc_problem("libx264")
    assert load_settings({"STEREOCRAFTER_DEVICE": "cpu"}).encoder == "auto"
    assert (
        load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_ENCODER": "hevc_nvenc"}).encoder
        == "hevc_nvenc"
    )
    with pytest.raises(ValueError, match="STEREOCRAFTER_ENCODER must be one of"):
        load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_ENCODER": "x264"})


def test_the_probe_opens_and_encodes_for_real() -> None:
    """The code that finds NVENC usable is the one that finds libx264 usable: it is not a probe
    that always fails. An encoder that does not exist is named as such."""
    assert encoders._problem("libx264") is None
    assert encoders._problem("no_such_encoder")


def test_nvenc_options_are_constant_quality_vbr() -> None:
    nvenc = Encoder("hevc_nvenc", "hevc_nvenc")
    assert nvenc.options(21) == {"preset": "p4", "tune": "hq", "rc": "vbr", "cq": "21", "b": "0"}
    assert nvenc.describe(21) == {"codec": "hevc_nvenc", "preset": "p4", "cq": 21, "requested": "hevc_nvenc"}
    assert LIBX264.options(18, preset="medium") == {
        "preset": "medium",
        "crf": "18",
        "x264-params": "cpu-independent=1",
    }


def _blocks(seed: int, count: int) -> np.ndarray:
    """8x8 blocks of noise under a drifting stripe: the kind of picture (like tiny weights' inpainting
    beside a test pattern) on which x264's AVX-512 mb-tree code varied from encode to encode."""
    rng = np.random.default_rng(seed)
    t, x = np.arange(count)[:, None, None], np.arange(192)[None, None, :]
    grey = 128 + 60 * np.kron(rng.normal(size=(count, 8, 24)), np.ones((8, 8))) + 20 * np.sin((x + 5 * t) / 4)
    return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=3)


def test_libx264_encodes_the_same_frames_to_the_same_bytes(tmp_path: Path) -> None:
    """Each clip encoded ten times gives one file. Without x264's cpu-independent mode, on a CPU with
    AVX-512 (this Xeon), these clips came out as 2 to 5 distinct files in 20 encodes each, in one
    process and on an idle machine; a CPU without AVX-512 never took that code path."""
    import hashlib

    for seed, count in ((1, 6), (2, 6), (4, 6), (5, 12)):
        frames, digests = _blocks(seed, count), set()
        for _ in range(10):
            with VideoWriter(tmp_path / "d.mp4", fps=24, width=192, height=64, crf=18) as writer:
                writer.write(frames)
            digests.add(hashlib.sha256((tmp_path / "d.mp4").read_bytes()).hexdigest())
        assert len(digests) == 1, f"clip {seed}: {len(digests)} different files from the same frames"


@pytest.mark.skipif(NO_NVENC is None, reason="this machine's NVENC opens")
def test_the_service_refuses_to_start_with_a_named_encoder_it_lacks(tiny_weights: Path) -> None:
    """The pool chooses the encoder before loading any model; the holder then fails with our
    message, which /ping and every request may tell (no models loaded in vain)."""
    from stereocrafter.serving.pool import PoolLoader  # the service's packages: not on a bare GPU host
    from stereocrafter.serving.weights import ModelHolder

    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_ENCODER": "h264_nvenc",
                              "WEIGHTS_DIR": str(tiny_weights)})  # fmt: skip
    holder = ModelHolder(settings.weights_dir, None, PoolLoader(settings).load).start()
    holder.wait(60)
    assert holder.state == "failed" and holder.pipeline is None and not holder.healthy
    assert holder.reason is not None and holder.reason.startswith(
        "STEREOCRAFTER_ENCODER h264_nvenc: h264_nvenc "
    )


@pytest.mark.gpu
@pytest.mark.parametrize("codec", ["h264_nvenc", "hevc_nvenc"])
def test_nvenc_writes_the_video_where_the_gpu_has_it(tmp_path: Path, codec: str) -> None:
    problem = nvenc_problem(codec)
    if problem is not None:
        pytest.skip(f"{codec} does not open on this GPU (A100, H100, H200 have no NVENC): {problem}")
    assert choose_encoder("auto").codec == "h264_nvenc"
    frames = scene_frames(30, 320, 180)
    out = tmp_path / "nvenc.mp4"
    with VideoWriter(out, fps=24, width=320, height=180, encoder=choose_encoder(codec)) as writer:
        writer.write(frames)
    info = probe(out)
    assert info.num_frames == 30 and (info.width, info.height) == (320, 180)
    assert info.codec == ("h264" if codec == "h264_nvenc" else "hevc")
    assert psnr(np.concatenate(list(iter_frames(out, 8))), frames) >= 35.0
    if codec == "hevc_nvenc":
        with av.open(str(out)) as container:
            assert container.streams.video[0].codec_tag == "hvc1"


@pytest.mark.gpu
def test_nvenc_opens_on_every_visible_gpu(tmp_path: Path) -> None:
    """The ``gpu`` option reaches FFmpeg: a session on each card (one slot each) writes its file."""
    import torch

    if nvenc_problem("h264_nvenc") is not None:
        pytest.skip("no NVENC on this GPU")
    for index in range(torch.cuda.device_count()):
        encoder = choose_encoder("auto").for_device(f"cuda:{index}")
        out = tmp_path / f"gpu{index}.mp4"
        with VideoWriter(out, fps=24, width=320, height=180, encoder=encoder) as writer:
            writer.write(scene_frames(8, 320, 180))
        assert probe(out).num_frames == 8
