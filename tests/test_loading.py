"""Loading from the published on-disk layout (written by the tiny-weights kit)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from stereocrafter.errors import WeightsMissingError
from stereocrafter.pipeline.loading import DEPTH_REPO, INPAINTING_REPO, STAGES, SVD_REPO, resolve_stage
from stereocrafter.stages.components import TINY_WEIGHTS_MARKER, is_tiny
from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline

DEPTH_FILES = [
    f"{SVD_REPO}/vae/config.json",
    f"{SVD_REPO}/vae/diffusion_pytorch_model.fp16.safetensors",
    f"{SVD_REPO}/image_encoder/config.json",
    f"{SVD_REPO}/image_encoder/model.fp16.safetensors",
    f"{SVD_REPO}/feature_extractor/preprocessor_config.json",
    f"{SVD_REPO}/scheduler/scheduler_config.json",
    f"{DEPTH_REPO}/config.json",
    f"{DEPTH_REPO}/diffusion_pytorch_model.safetensors",
]


@pytest.fixture
def weights_copy(tiny_weights: Path, tmp_path: Path) -> Path:
    target = tmp_path / "weights"
    shutil.copytree(tiny_weights, target)
    return target


def test_tiny_layout_is_the_published_layout(tiny_weights: Path) -> None:
    for relative in DEPTH_FILES:
        assert (tiny_weights / relative).is_file(), relative
    assert (
        tiny_weights / INPAINTING_REPO / "unet_diffusers" / "diffusion_pytorch_model.safetensors"
    ).is_file()
    depth_config = json.loads((tiny_weights / DEPTH_REPO / "config.json").read_text())
    assert depth_config["_class_name"] == "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"
    assert depth_config["in_channels"] == 8 and depth_config["out_channels"] == 4
    inpaint_config = json.loads(
        (tiny_weights / INPAINTING_REPO / "unet_diffusers" / "config.json").read_text()
    )
    assert inpaint_config["_class_name"] == "UNetSpatioTemporalConditionModel"
    assert inpaint_config["in_channels"] == 9
    vae_config = json.loads((tiny_weights / SVD_REPO / "vae" / "config.json").read_text())
    assert vae_config["_class_name"] == "AutoencoderKLTemporalDecoder"
    assert len(vae_config["block_out_channels"]) == 4 and vae_config["force_upcast"] is True
    clip_config = json.loads((tiny_weights / SVD_REPO / "image_encoder" / "config.json").read_text())
    assert (
        clip_config["architectures"] == ["CLIPVisionModelWithProjection"] and clip_config["image_size"] == 224
    )
    assert is_tiny(tiny_weights)


def test_loads_through_the_real_code_path(tiny_weights: Path) -> None:
    pipe = load_depth_pipeline(tiny_weights, device="cpu")
    assert pipe.unet.dtype == torch.float32  # fp16 files, upcast on the CPU
    assert type(pipe.unet).__name__ == "DiffusersUNetSpatioTemporalConditionModelDepthCrafter"
    assert pipe.vae_scale_factor == 8
    assert pipe.image_mean == (0.48145466, 0.4578275, 0.40821073)
    processors = {type(p).__name__ for p in pipe.unet.attn_processors.values()}
    assert processors == {"BatchSplitAttnProcessor"}  # PyTorch SDPA, batches within CUDA's grid limit
    chunks = {m._chunk_size for m in pipe.unet.modules() if hasattr(m, "_chunk_size")}
    assert chunks == {None}  # whole feed-forward until a call's memory needs chunks (models.attention)


def test_fp16_keeps_the_vae_encoder_in_fp32(tiny_weights: Path) -> None:
    pipe = load_depth_pipeline(tiny_weights, device="cpu", dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16
    assert next(pipe.vae.encoder.parameters()).dtype == torch.float32
    assert next(pipe.vae.decoder.parameters()).dtype == torch.float16


@pytest.mark.parametrize("relative", DEPTH_FILES)
def test_each_missing_file_is_reported(weights_copy: Path, relative: str) -> None:
    (weights_copy / relative).unlink()
    with pytest.raises(WeightsMissingError) as caught:
        load_depth_pipeline(weights_copy)
    assert caught.value.status == 503
    assert len(caught.value.missing) == 1
    assert relative in caught.value.missing[0]
    assert relative in caught.value.message


def test_everything_missing_lists_every_component(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError) as caught:
        resolve_stage(tmp_path, "depth")
    assert len(caught.value.missing) == len(STAGES["depth"])


def test_accepts_the_alternative_layouts(weights_copy: Path) -> None:
    # DepthCrafter's UNet in an unet/ subfolder (its older layout), full-precision file names.
    depth = weights_copy / DEPTH_REPO
    (depth / "unet").mkdir()
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (depth / name).rename(depth / "unet" / name)
    vae = weights_copy / SVD_REPO / "vae"
    (vae / "diffusion_pytorch_model.fp16.safetensors").rename(vae / "diffusion_pytorch_model.safetensors")
    encoder = weights_copy / SVD_REPO / "image_encoder"
    (encoder / "model.fp16.safetensors").rename(encoder / "model.safetensors")
    parts = resolve_stage(weights_copy, "depth")
    assert parts["depth_unet"].subfolder == "unet" and parts["vae"].variant is None
    pipe = load_depth_pipeline(weights_copy)
    assert pipe(torch.rand(2, 3, 64, 64), num_inference_steps=1).shape == (2, 1, 64, 64)
    # StereoCrafter's UNet at the repo root instead of unet_diffusers/.
    stereo = weights_copy / INPAINTING_REPO
    for name in ("config.json", "diffusion_pytorch_model.safetensors"):
        (stereo / "unet_diffusers" / name).rename(stereo / name)
    assert resolve_stage(weights_copy, "inpainting")["inpainting_unet"].subfolder == ""


def test_download_patterns_cover_what_the_loaders_read() -> None:
    from stereocrafter.pipeline.loading import COMPONENTS

    patterns = {c.name: c.download_patterns() for c in COMPONENTS}
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in patterns["vae"]
    assert patterns["depth_unet"] == [
        "config.json",
        "diffusion_pytorch_model.safetensors",
        "unet/config.json",
        "unet/diffusion_pytorch_model.safetensors",
    ]
    assert "unet_diffusers/diffusion_pytorch_model.safetensors" in patterns["inpainting_unet"]
    assert all(
        "unet/" not in p for p in patterns["vae"] + patterns["image_encoder"]
    )  # SVD's UNet is never fetched


def test_marker_labels_tiny_weights(weights_copy: Path) -> None:
    assert is_tiny(weights_copy)
    for marker in weights_copy.rglob(TINY_WEIGHTS_MARKER):
        marker.unlink()
    assert not is_tiny(weights_copy)


def test_stereo_pipeline_shares_the_svd_components(tiny_weights: Path) -> None:
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    stereo = load_stereo_pipeline(tiny_weights, device="cpu")
    assert stereo.depth.vae is stereo.inpainting.vae
    assert stereo.depth.image_encoder is stereo.inpainting.image_encoder
    assert stereo.inpainting.unet.config.in_channels == 9 and stereo.depth.unet.config.in_channels == 8


def test_stereo_pipeline_reports_both_stages_missing(weights_copy: Path) -> None:
    from stereocrafter.pipeline.loading import load_stereo_pipeline

    (weights_copy / DEPTH_REPO / "config.json").unlink()
    (weights_copy / INPAINTING_REPO / "unet_diffusers" / "config.json").unlink()
    with pytest.raises(WeightsMissingError) as caught:
        load_stereo_pipeline(weights_copy)
    assert len(caught.value.missing) == 2


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
    assert [c.model for c in calls] == ["vda-small", "inpainting"]
    assert compiled.depth_stages["vda-small"].pipeline.model._compiled_call_impl is not None
    assert compiled.inpainting.unet._compiled_call_impl is not None
    assert np.array_equal(convert(compiled), plain)


def test_the_warm_up_covers_the_shapes_of_each_served_preset() -> None:
    """The calls a 1080p job of each preset makes (what ``compile_models`` runs at start-up)."""
    from stereocrafter.pipeline.compile import warmup_calls
    from stereocrafter.stages.base import WarmupCall

    turbo = warmup_calls(("turbo",), (1080, 1920))
    assert turbo == [WarmupCall("vda-small", 32, 1, (518, 924)), WarmupCall("inpainting", 23, 1, (32, 56))]
    reference = warmup_calls(("reference",), (1080, 1920))
    assert reference == [  # DepthCrafter at 1024 px (576 of 1080 -> 72 latent rows); guidance's two
        # passes: 2 calls of batch 1 in DepthCrafter, one call of batch 2 in the inpainting
        WarmupCall("depthcrafter", 70, 1, (72, 128)),
        WarmupCall("inpainting", 23, 2, (136, 240)),
    ]
    both = warmup_calls(("fast", "turbo"), (576, 1024))
    assert [(c.model, c.frames, c.batch, c.size) for c in both] == [
        ("depthcrafter", 110, 1, (72, 128)), ("inpainting", 23, 1, (72, 128)),
        ("vda-small", 32, 1, (518, 924)), ("inpainting", 23, 1, (32, 56)),
    ]  # fmt: skip


def test_a_warm_up_call_is_chunked_as_a_job_s_call_would_be(inpainting_pipeline, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """On a card with little free memory the warm-up runs (and compiles) the chunked feed-forward,
    as the job's call of that shape will: never an unchunked call that would not fit."""
    from stereocrafter.models import attention
    from stereocrafter.stages.base import WarmupCall
    from stereocrafter.stages.components import warm_up_unet as _unet_call

    unet = inpainting_pipeline.unet
    seen: list[set] = []
    hook = unet.register_forward_pre_hook(
        lambda module, _args: seen.append(
            {m._chunk_size for m in module.modules() if hasattr(m, "_chunk_size")}
        )
    )
    try:
        for available in (1, 10**12):
            monkeypatch.setattr(attention, "available_bytes", lambda device, a=available: a)
            _unet_call(unet, WarmupCall("inpainting", 3, 1, (8, 8)), per_frame_context=False)
    finally:
        hook.remove()
        attention.chunk_feed_forward(unet, None)
        unet._stereocrafter_ff_chunking = None
    assert seen == [{1}, {None}]
