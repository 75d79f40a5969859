"""The DepthCrafter stage on tiny random weights: real tensor maths, checked against the reference."""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel

from stereocrafter.errors import NonFiniteOutputError
from stereocrafter.models.depth import DepthCrafterPipeline, WindowState, processing_size, resize_frames
from stereocrafter.stereo.depthmap import normalize_depth, resize_depth
from tests.support.reference_depth import reference_depth

H, W = 64, 96  # latent 8 x 12


def clip(t: int, seed: int = 0) -> torch.Tensor:
    """A smooth moving pattern, (t, 3, H, W) in [0, 1]."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.linspace(0, 1, H).view(1, 1, H, 1)
    x = torch.linspace(0, 1, W).view(1, 1, 1, W)
    phase = torch.arange(t).view(t, 1, 1, 1) * 0.3
    colour = torch.rand((1, 3, 1, 1), generator=gen)
    return (0.5 + 0.4 * torch.sin(6 * x + 4 * y + phase) * colour).clamp(0, 1)


def unit_noise(pipe: DepthCrafterPipeline, t: int, seed: int = 5) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn((1, t, 4, H // 8, W // 8), generator=gen)


class UNetCalls:
    """Forward pre-hook on the real UNet recording what it is given."""

    def __init__(self, unet: torch.nn.Module) -> None:
        self.calls: list[dict[str, torch.Tensor]] = []
        self.handle = unet.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        sample, timestep = args[0], args[1]
        self.calls.append(
            {
                "sample": sample.clone(),
                "timestep": torch.as_tensor(timestep).clone(),
                "context": kwargs["encoder_hidden_states"].clone(),
                "time_ids": kwargs["added_time_ids"].clone(),
            }
        )

    def __enter__(self) -> UNetCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


# --- the schedule and the UNet ---------------------------------------------------------------


def test_scheduler_is_the_reference_karras_schedule(depth_pipeline: DepthCrafterPipeline) -> None:
    from diffusers import EulerDiscreteScheduler

    scheduler = EulerDiscreteScheduler.from_config(depth_pipeline.scheduler.config)
    scheduler.set_timesteps(8)
    expected_sigmas = [700.0, 286.539, 102.903, 30.994, 7.276, 1.1676, 0.0974, 0.002, 0.0]
    expected_t = [1.6378, 1.4145, 1.1584, 0.8584, 0.4962, 0.0387, -0.5823, -1.5537]
    assert scheduler.sigmas.tolist() == pytest.approx(expected_sigmas, rel=2e-4, abs=1e-4)
    assert scheduler.timesteps.tolist() == pytest.approx(expected_t, abs=1e-4)
    assert float(scheduler.init_noise_sigma) == pytest.approx(math.sqrt(700.0**2 + 1), rel=1e-7)
    assert scheduler.config.prediction_type == "v_prediction"


def test_unet_forward_equals_stock_forward_for_a_shared_context(depth_pipeline: DepthCrafterPipeline) -> None:
    """DepthCrafter's forward differs from the stock one only in the per-frame context."""
    ours = depth_pipeline.unet
    stock = UNetSpatioTemporalConditionModel.from_config(ours.config)
    stock.load_state_dict(ours.state_dict())
    gen = torch.Generator().manual_seed(1)
    sample = torch.randn((1, 5, 8, 8, 12), generator=gen)
    one = torch.randn((1, 1, ours.config.cross_attention_dim), generator=gen)
    time_ids = torch.tensor([[7.0, 127.0, 0.02]])
    with torch.no_grad():
        a = ours(sample, 1.1584, one.expand(1, 5, -1), time_ids).sample
        b = stock(sample, 1.1584, one, time_ids).sample
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # ...and the per-frame context does matter.
    per_frame = torch.randn((1, 5, ours.config.cross_attention_dim), generator=gen)
    with torch.no_grad():
        c = ours(sample, 1.1584, per_frame, time_ids).sample
    assert (a - c).abs().max() > 1e-3
    with pytest.raises(ValueError, match="one embedding per frame"):
        ours(sample, 1.1584, one, time_ids)


# --- outputs -------------------------------------------------------------------------------


def test_shape_range_and_seeding(depth_pipeline: DepthCrafterPipeline) -> None:
    frames = clip(24)
    depth = depth_pipeline(frames)  # defaults: 8 steps, CFG 1.2, window 70 -> one window
    assert depth.shape == (24, 1, H, W) and depth.dtype == torch.float32
    assert depth.min() >= 0 and depth.max() <= 1
    again = depth_pipeline(frames, generator=torch.Generator().manual_seed(42))
    assert torch.equal(depth, again), "default generator is seed 42"
    other = depth_pipeline(frames, generator=torch.Generator().manual_seed(7))
    assert (depth - other).abs().max() > 1e-3


@pytest.mark.parametrize(
    ("num_frames", "window", "overlap", "guidance"),
    [(6, 8, 3, 1.2), (8, 8, 3, 1.2), (20, 8, 3, 1.2), (17, 6, 2, 1.0), (11, 8, 0, 1.2)],
)
def test_matches_the_whole_clip_reference_walkthrough(
    depth_pipeline: DepthCrafterPipeline, num_frames: int, window: int, overlap: int, guidance: float
) -> None:
    """Streaming (per-window encode, early decode) == the reference's whole-clip procedure."""
    frames = clip(num_frames, seed=num_frames)
    noise = unit_noise(depth_pipeline, min(window, num_frames))
    kwargs = {"window_size": window, "overlap": overlap, "guidance_scale": guidance}
    ours = depth_pipeline(frames, latents=noise, noise_aug_strength=0.0, decode_chunk_size=3, **kwargs)
    ref = reference_depth(depth_pipeline, frames, noise, decode_chunk_size=3, **kwargs)
    assert ours.shape == ref.shape == (num_frames, 1, H, W)
    torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)


def test_windows_renoise_and_blend(depth_pipeline: DepthCrafterPipeline) -> None:
    """T=20, window 8, overlap 3: windows [0,8) [5,13) [10,18) [15,20); checked on the UNet's inputs."""
    steps, window, overlap = 2, 8, 3
    noise = unit_noise(depth_pipeline, window)
    states: list[WindowState] = []
    with UNetCalls(depth_pipeline.unet) as hook:
        depth = depth_pipeline(
            clip(20),
            num_inference_steps=steps,
            window_size=window,
            overlap=overlap,
            latents=noise,
            callback_on_window_end=lambda s: states.append(
                WindowState(
                    s.index,
                    s.start,
                    s.end,
                    s.num_frames,
                    s.window_latents.clone(),
                    s.latents.clone(),
                    s.latents_start,
                )
            ),
        )
    assert depth.shape == (20, 1, H, W)
    assert [(s.start, s.end) for s in states] == [(0, 8), (5, 13), (10, 18), (15, 20)]
    calls = hook.calls
    assert len(calls) == 4 * steps * 2  # CFG: two passes per step
    sigma0 = 700.0
    scale0 = 1 / math.sqrt(sigma0**2 + 1)  # scale_model_input at the first step
    init_sigma = math.sqrt(sigma0**2 + 1)

    # The noise each window starts from: the initial noise rotated by (overlap, stride).
    rotated = noise * init_sigma
    for k, state in enumerate(states):
        n = state.end - state.start
        first = calls[k * steps * 2]["sample"][:, :, :4] / scale0  # latents at step 0
        start_noise = rotated[:, :n]
        if k == 0:
            torch.testing.assert_close(first, start_noise, rtol=1e-5, atol=1e-3)
        else:
            prev = states[k - 1].latents  # blended latents after window k-1
            renoised = prev[:, -overlap:] + start_noise[:, :overlap] / init_sigma * sigma0
            torch.testing.assert_close(first[:, :overlap], renoised, rtol=1e-5, atol=1e-3)
            torch.testing.assert_close(first[:, overlap:], start_noise[:, overlap:], rtol=1e-5, atol=1e-3)
            # Blend: new window weight linspace(0, 1) over the overlap, old window 1 - w.
            w = torch.linspace(0, 1, overlap).view(1, overlap, 1, 1, 1)
            expected = state.window_latents[:, :overlap] * w + prev[:, -overlap:] * (1 - w)
            got = state.latents[
                :, state.start - state.latents_start : state.start - state.latents_start + overlap
            ]
            torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
            rest = state.latents[:, state.start - state.latents_start + overlap :]
            torch.testing.assert_close(rest, state.window_latents[:, overlap:], rtol=0, atol=0)
        rotated = torch.cat([rotated[:, window - overlap :], rotated[:, : window - overlap]], dim=1)


def test_unet_inputs_channels_context_and_guidance(depth_pipeline: DepthCrafterPipeline) -> None:
    frames = clip(10)
    with UNetCalls(depth_pipeline.unet) as hook:
        depth_pipeline(frames, num_inference_steps=3, guidance_scale=1.2)
    calls = hook.calls
    assert len(calls) == 3 * 2
    for cond, uncond in zip(calls[0::2], calls[1::2], strict=True):
        assert cond["sample"].shape == (1, 10, 8, H // 8, W // 8)  # 4 noisy + 4 video latents
        assert cond["context"].shape == (1, 10, depth_pipeline.unet.config.cross_attention_dim)
        # One distinct embedding per frame (the frames differ).
        assert (cond["context"][0, 0] - cond["context"][0, 5]).abs().max() > 1e-6
        assert cond["sample"][:, :, 4:].abs().max() > 0
        # Unconditional pass: same noisy latents, zeroed video latents and embeddings.
        torch.testing.assert_close(uncond["sample"][:, :, :4], cond["sample"][:, :, :4], rtol=0, atol=0)
        assert torch.count_nonzero(uncond["sample"][:, :, 4:]) == 0
        assert torch.count_nonzero(uncond["context"]) == 0
        torch.testing.assert_close(cond["time_ids"], torch.tensor([[7.0, 127.0, 0.02]]))
    with UNetCalls(depth_pipeline.unet) as hook:
        depth_pipeline(frames, num_inference_steps=3, guidance_scale=1.0)
    assert len(hook.calls) == 3  # no guidance: one pass per step


def test_noise_augmentation_reaches_the_vae_not_clip(depth_pipeline: DepthCrafterPipeline) -> None:
    frames = clip(8)
    seen: list[torch.Tensor] = []  # the encoder's inputs, VAE_ENCODE_BATCH frames per call
    handles = [depth_pipeline.vae.encoder.register_forward_pre_hook(lambda m, a: seen.append(a[0].clone()))]
    try:
        depth_pipeline(frames, num_inference_steps=1, noise_aug_strength=0.02)
    finally:
        for handle in handles:
            handle.remove()
    assert [len(x) for x in seen] == [2, 2, 2, 2]
    residual = (torch.cat(seen) - (frames * 2 - 1)) / 0.02
    assert abs(float(residual.mean())) < 0.05
    assert float(residual.std()) == pytest.approx(1.0, abs=0.05)


def test_reads_each_frame_once_window_by_window(depth_pipeline: DepthCrafterPipeline) -> None:
    frames = clip(20)

    class Recorder:
        def __init__(self) -> None:
            self.slices: list[tuple[int, int]] = []

        def __len__(self) -> int:
            return 20

        def __getitem__(self, index: slice) -> torch.Tensor:
            self.slices.append((index.start, index.stop))
            return frames[index]

    source = Recorder()
    depth = depth_pipeline(source, num_inference_steps=1, window_size=8, overlap=3)
    torch.testing.assert_close(
        depth, depth_pipeline(frames, num_inference_steps=1, window_size=8, overlap=3), rtol=0, atol=0
    )
    reads = [s for s in source.slices if s != (0, 1)]  # (0, 1) is the size probe
    assert reads == [(0, 8), (8, 13), (13, 18), (18, 20)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window_size": 8, "overlap": 8}, "overlap must be in"),
        ({"num_inference_steps": 0}, "num_inference_steps must be >= 1"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"decode_chunk_size": 0}, "decode_chunk_size"),
        ({"latents": torch.zeros(1, 3, 4, 8, 12)}, "latents must have shape"),
    ],
)
def test_check_inputs_rejects_bad_parameters(
    depth_pipeline: DepthCrafterPipeline, kwargs: dict, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        depth_pipeline(clip(10), **kwargs)


def test_check_inputs_rejects_bad_frames(depth_pipeline: DepthCrafterPipeline) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        depth_pipeline(torch.rand(4, 3, 60, 96))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        depth_pipeline(clip(4) * 2)
    with pytest.raises(ValueError, match="must be \\(n, 3"):
        depth_pipeline(torch.rand(4, 4, H, W))


# --- sizes and post-processing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1080, 1920), (576, 1024)), ((720, 1280), (576, 1024)), ((360, 640), (384, 640)), ((10, 10), (64, 64)),
     ((2160, 3840), (576, 1024)), ((1920, 1080), (1024, 576)), ((480, 640), (512, 640))],
)  # fmt: skip
def test_processing_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert processing_size(*size) == expected


def test_resize_and_normalize() -> None:
    frames = torch.rand(2, 3, 90, 160)
    small = resize_frames(frames, (64, 96))
    assert small.shape == (2, 3, 64, 96) and small.min() >= 0 and small.max() <= 1
    depth = torch.rand(2, 1, 64, 96) * 0.5 + 0.2
    big = resize_depth(depth, (90, 160))
    assert big.shape == (2, 1, 90, 160)
    norm = normalize_depth(big)
    assert float(norm.min()) == 0.0 and float(norm.max()) == pytest.approx(1.0)
    assert torch.count_nonzero(normalize_depth(torch.full((1, 1, 4, 4), 0.3))) == 0


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


def _depth(pipeline, frames: torch.Tensor) -> torch.Tensor:  # type: ignore[no-untyped-def]
    return pipeline(frames, num_inference_steps=1, window_size=8, overlap=2, decode_chunk_size=4)
