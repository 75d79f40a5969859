"""``pipeline.compile``: ``torch.compile`` of the loaded stages (slow) and the warm-up calls of each
served preset."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_compiled_unets_give_the_same_conversion(tiny_weights: Path) -> None:
    """STEREOCRAFTER_COMPILE: both UNets go through torch.compile (dynamo; the "eager" backend
    here, inductor in production) and warm up at load; the conversion is unchanged."""
    import numpy as np

    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.compile import compile_models
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    config = StereoConfig(depth_steps=1, inpaint_steps=1)
    frames = (np.random.default_rng(0).random((5, 64, 96, 3)) * 255).astype(np.uint8)

    def convert(pipeline) -> np.ndarray:
        out: list[np.ndarray] = []
        pipeline.run(lambda: iter([frames]), out.append, num_frames=5, width=96, height=64, mode="sbs")
        return np.concatenate(out)

    plain = convert(load_stereo_pipeline(tiny_weights, device="cpu", config=config))
    compiled = load_stereo_pipeline(tiny_weights, device="cpu", config=config)
    compile_models(compiled, "eager", presets=("reference",), warmup_size=(64, 96))
    for unet in (compiled.depth.unet, compiled.inpainting.unet):
        assert unet._compiled_call_impl is not None
    assert np.array_equal(convert(compiled), plain)


@pytest.mark.slow
def test_a_turbo_only_pipeline_compiles_and_converts(tiny_weights: Path) -> None:
    """STEREOCRAFTER_COMPILE=1 on a turbo-only endpoint: no DepthCrafter is loaded, VDA-S and the
    inpainting UNet compile and warm up at turbo's shapes, and the conversion is unchanged."""
    import numpy as np

    from stereocrafter.config import StereoConfig
    from stereocrafter.pipeline.compile import compile_models
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    config = StereoConfig.from_preset("turbo", inpaint_steps=1)
    frames = (np.random.default_rng(1).random((5, 64, 96, 3)) * 255).astype(np.uint8)

    def convert(pipeline) -> np.ndarray:
        out: list[np.ndarray] = []
        pipeline.run(lambda: iter([frames]), out.append, num_frames=5, width=96, height=64, mode="sbs")
        return np.concatenate(out)

    plain = convert(load_stereo_pipeline(tiny_weights, config=config, presets=("turbo",)))
    compiled = load_stereo_pipeline(tiny_weights, config=config, presets=("turbo",))
    assert compiled.depth is None  # the case that crashed: no DepthCrafter UNet to compile
    calls = compile_models(compiled, "eager", presets=("turbo",), warmup_size=(64, 96))
    assert [c.model for c in calls] == ["vda-small", "stereocrafter"]
    assert compiled.depth_stages["vda-small"].pipeline.model._compiled_call_impl is not None
    assert compiled.inpainting.unet._compiled_call_impl is not None
    assert np.array_equal(convert(compiled), plain)


def test_the_warm_up_covers_the_shapes_of_each_served_preset() -> None:
    """The calls a 1080p job of each preset makes (what ``compile_models`` runs at start-up)."""
    from stereocrafter.pipeline.compile import warmup_calls
    from stereocrafter.stages.base import WarmupCall

    turbo = warmup_calls(("turbo",), (1080, 1920))
    assert turbo == [WarmupCall("vda-small", 32, 1, (518, 924)), WarmupCall("stereocrafter", 23, 1, (32, 56))]
    reference = warmup_calls(("reference",), (1080, 1920))
    assert reference == [  # DepthCrafter at 1024 px (576 of 1080 -> 72 latent rows); guidance's two
        # passes: 2 calls of batch 1 in DepthCrafter, one call of batch 2 in the inpainting
        WarmupCall("depthcrafter", 70, 1, (72, 128)),
        WarmupCall("stereocrafter", 23, 2, (136, 240)),
    ]
    both = warmup_calls(("fast", "turbo"), (576, 1024))
    assert [(c.model, c.frames, c.batch, c.size) for c in both] == [
        ("depthcrafter", 110, 1, (72, 128)), ("stereocrafter", 23, 1, (72, 128)),
        ("vda-small", 32, 1, (518, 924)), ("stereocrafter", 23, 1, (32, 56)),
    ]  # fmt: skip
