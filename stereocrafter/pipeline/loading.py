"""Build the pipelines from ``WEIGHTS_DIR``: the only module that knows the on-disk layout.

Layout (the Hugging Face repos, each under its repo id):

    WEIGHTS_DIR/stabilityai/stable-video-diffusion-img2vid-xt-1-1/
        vae/config.json, vae/diffusion_pytorch_model.fp16.safetensors        (fp16 variant preferred)
        image_encoder/config.json, image_encoder/model.fp16.safetensors      (fp16 variant preferred)
        feature_extractor/preprocessor_config.json
        scheduler/scheduler_config.json
    WEIGHTS_DIR/tencent/DepthCrafter/
        config.json, diffusion_pytorch_model.safetensors                     (root; or unet/)
    WEIGHTS_DIR/TencentARC/StereoCrafter/
        unet_diffusers/config.json, unet_diffusers/diffusion_pytorch_model.safetensors  (or the root)
    WEIGHTS_DIR/depth-anything/Video-Depth-Anything-Small/
        video_depth_anything_vits.pth                                          (a plain state dict)

``COMPONENTS``, ``STAGES`` and ``MODEL_COMPONENTS`` are the one list of what each stage and model
reads; the weight download takes its file list from here, for the models of the presets served
(``catalog.models_of``): a turbo-only endpoint never fetches or loads DepthCrafter.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stereocrafter.catalog import MODELS, VDA_CHECKPOINT, models_of
from stereocrafter.errors import WeightsMissingError
from stereocrafter.presets import PRESET_NAMES

if TYPE_CHECKING:  # the pipelines import diffusers; keep this module light to import
    from stereocrafter.models.depth import DepthCrafterPipeline
    from stereocrafter.models.inpainting import StereoInpaintingPipeline
    from stereocrafter.models.vda_depth import VdaDepthPipeline
    from stereocrafter.pipeline.run import StereoConfig, StereoPipeline

logger = logging.getLogger(__name__)

SVD_REPO = MODELS["svd"].repo  # stabilityai/stable-video-diffusion-img2vid-xt-1-1
DEPTH_REPO = MODELS["depthcrafter"].repo  # tencent/DepthCrafter
INPAINTING_REPO = MODELS["stereocrafter"].repo  # TencentARC/StereoCrafter
VDA_REPO = MODELS["vda-small"].repo  # depth-anything/Video-Depth-Anything-Small

# Written by stereocrafter.testing.weights next to tiny random weights, so nothing presents their output
# as a real conversion.
TINY_WEIGHTS_MARKER = "TINY-RANDOM-WEIGHTS.txt"


@dataclass(frozen=True)
class Component:
    """One model component: where it may live in its repo and which files it needs.

    ``subfolders`` are tried in order (the first complete one wins); ``weights`` are alternative
    file names, preferred first (the fp16 variant before the full-precision file).
    """

    name: str
    repo: str
    subfolders: tuple[str, ...]
    config: str
    weights: tuple[str, ...] = ()

    def resolve(self, weights_dir: Path) -> Resolved | None:
        """Where this component is complete under ``weights_dir``, or None."""
        for sub in self.subfolders:
            folder = weights_dir / self.repo / sub
            if not (folder / self.config).is_file():
                continue
            if not self.weights:
                return Resolved(self, folder, sub, None)
            for weight in self.weights:
                if (folder / weight).is_file():
                    variant = "fp16" if ".fp16." in weight else None
                    return Resolved(self, folder, sub, variant)
        return None

    def describe_missing(self) -> str:
        """The preferred location, naming the alternatives."""
        sub = self.subfolders[0]
        files = [self.config, *self.weights[:1]]
        paths = [str(Path(self.repo, sub, f)) for f in files]
        alternatives = [f"under {s}/" if s else "at the repo root" for s in self.subfolders[1:]]
        alternatives += list(self.weights[1:])
        note = f" (or {', '.join(alternatives)})" if alternatives else ""
        return " + ".join(paths) + note

    def download_patterns(self) -> list[str]:
        """Repo-relative file names to fetch: every accepted location of the config and the
        preferred weight file."""
        patterns = []
        for sub in self.subfolders:
            prefix = f"{sub}/" if sub else ""
            patterns.append(prefix + self.config)
            patterns += [prefix + w for w in self.weights[:1]]
        return patterns


@dataclass(frozen=True)
class Resolved:
    component: Component
    folder: Path
    subfolder: str
    variant: str | None


VAE = Component(
    "vae",
    SVD_REPO,
    ("vae",),
    "config.json",
    ("diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.safetensors"),
)
IMAGE_ENCODER = Component(
    "image_encoder",
    SVD_REPO,
    ("image_encoder",),
    "config.json",
    ("model.fp16.safetensors", "model.safetensors"),
)
FEATURE_EXTRACTOR = Component(
    "feature_extractor", SVD_REPO, ("feature_extractor",), "preprocessor_config.json"
)
SCHEDULER = Component("scheduler", SVD_REPO, ("scheduler",), "scheduler_config.json")
DEPTH_UNET = Component(
    "depth_unet", DEPTH_REPO, ("", "unet"), "config.json", ("diffusion_pytorch_model.safetensors",)
)
INPAINTING_UNET = Component(
    "inpainting_unet",
    INPAINTING_REPO,
    ("unet_diffusers", ""),
    "config.json",
    ("diffusion_pytorch_model.safetensors",),
)

VDA = Component("vda", VDA_REPO, ("",), VDA_CHECKPOINT)  # one file: the state dict

COMPONENTS = (VAE, IMAGE_ENCODER, FEATURE_EXTRACTOR, SCHEDULER, DEPTH_UNET, INPAINTING_UNET, VDA)
STAGES: dict[str, tuple[Component, ...]] = {
    "depth": (VAE, IMAGE_ENCODER, FEATURE_EXTRACTOR, SCHEDULER, DEPTH_UNET),
    "inpainting": (VAE, IMAGE_ENCODER, FEATURE_EXTRACTOR, SCHEDULER, INPAINTING_UNET),
    "vda": (VDA,),
}
# What each model of ``catalog.MODELS`` reads.
MODEL_COMPONENTS: dict[str, tuple[Component, ...]] = {
    "depthcrafter": (DEPTH_UNET,),
    "vda-small": (VDA,),
    "stereocrafter": (INPAINTING_UNET,),
    "svd": (VAE, IMAGE_ENCODER, FEATURE_EXTRACTOR, SCHEDULER),
}


def components_of(presets: Sequence[str] = PRESET_NAMES) -> tuple[Component, ...]:
    """The components the models of ``presets`` read, each once, in ``COMPONENTS`` order."""
    wanted = {c for model in models_of(presets) for c in MODEL_COMPONENTS[model]}
    return tuple(c for c in COMPONENTS if c in wanted)


def resolve_stage(weights_dir: str | os.PathLike[str], stage: str) -> dict[str, Resolved]:
    """Locate every component of ``stage``; raise ``WeightsMissingError`` listing all that are
    missing."""
    root = Path(weights_dir)
    found: dict[str, Resolved] = {}
    missing: list[str] = []
    for component in STAGES[stage]:
        resolved = component.resolve(root)
        if resolved is None:
            missing.append(component.describe_missing())
        else:
            found[component.name] = resolved
    if missing:
        raise WeightsMissingError(missing, str(root))
    return found


def is_tiny(weights_dir: str | os.PathLike[str]) -> bool:
    """True for the random test weights of ``stereocrafter.testing.weights`` (marked at the root and in each
    repo folder, so the label survives a download of the repos)."""
    root = Path(weights_dir)
    return (root / TINY_WEIGHTS_MARKER).is_file() or any(
        (root / repo / TINY_WEIGHTS_MARKER).is_file()
        for repo in (SVD_REPO, DEPTH_REPO, INPAINTING_REPO, VDA_REPO)
    )


def default_dtype(device: torch.device | str) -> torch.dtype:
    """fp16 on CUDA (as the reference), fp32 elsewhere."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


def prepare_vae(vae: Any, dtype: torch.dtype) -> None:
    """SDPA attention; with fp16 and ``force_upcast`` the encoder stays in fp32.

    The reference upcasts the whole VAE for encoding and casts it back for decoding; keeping the
    encoder in fp32 for good gives the same arithmetic without mutating a shared module mid-call.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0

    vae.set_attn_processor(AttnProcessor2_0())
    if dtype == torch.float16 and vae.config.force_upcast:
        vae.encoder.float()
        vae.quant_conv.float()


def prepare_unet(unet: Any) -> None:
    """How both UNets run; neither changes what they compute:

    - SDPA attention with batches cut to CUDA's grid limit (``attention.BatchSplitAttnProcessor``);
    - feed-forward layers one frame (spatial blocks) or one frame step (temporal blocks) at a
      time only where the call would not fit unchunked: decided per window or chunk by the
      pipelines (``attention.set_feed_forward_chunking``), from its shape and the free memory.
      Chunked, a 110-frame depth window at 1024x576 needs 9.7 GB of activations instead of
      17.5 GB, for the same FLOPs but 3x the launches (bench/ff_chunking.py).
    """
    from stereocrafter.models.attention import use_batch_split_attention

    use_batch_split_attention(unet)


def _load_svd_parts(
    parts: dict[str, Resolved], device: torch.device, dtype: torch.dtype
) -> dict[str, object]:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler
    from transformers import CLIPVisionModelWithProjection

    vae_part = parts["vae"]
    vae = AutoencoderKLTemporalDecoder.from_pretrained(
        vae_part.folder, variant=vae_part.variant, torch_dtype=dtype, local_files_only=True
    )
    prepare_vae(vae, dtype)
    encoder_part = parts["image_encoder"]
    image_encoder = CLIPVisionModelWithProjection.from_pretrained(
        encoder_part.folder,
        variant=encoder_part.variant,
        dtype=dtype,
        attn_implementation="sdpa",
        local_files_only=True,
    )
    scheduler = EulerDiscreteScheduler.from_pretrained(parts["scheduler"].folder, local_files_only=True)
    processor = json.loads((parts["feature_extractor"].folder / "preprocessor_config.json").read_text())
    return {
        "vae": vae.to(device).eval(),
        "image_encoder": image_encoder.to(device).eval(),
        "scheduler": scheduler,
        "image_mean": tuple(processor["image_mean"]),
        "image_std": tuple(processor["image_std"]),
    }


def _assemble(
    pipeline_class: Any,
    unet: Any,
    parts: dict[str, Resolved],
    device: torch.device,
    dtype: torch.dtype,
    svd: dict[str, object] | None,
) -> Any:
    """A stage's pipeline from its UNet and the (possibly shared) SVD parts, for inference only."""
    prepare_unet(unet)
    svd = svd or _load_svd_parts(parts, device, dtype)
    pipeline = pipeline_class(unet=unet.to(device).eval(), **svd)
    for module in (pipeline.unet, pipeline.vae, pipeline.image_encoder):
        module.requires_grad_(False)
    return pipeline


def load_depth_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    svd: dict[str, object] | None = None,
) -> DepthCrafterPipeline:
    """The DepthCrafter pipeline from ``weights_dir`` on ``device`` (fp16 on CUDA, fp32 on CPU by
    default). Raises ``WeightsMissingError`` before loading anything if a file is missing.
    ``svd`` reuses already loaded SVD components (see ``load_stereo_pipeline``)."""

    from stereocrafter.models.depth import (
        DepthCrafterPipeline,
        DiffusersUNetSpatioTemporalConditionModelDepthCrafter,
    )

    parts = resolve_stage(weights_dir, "depth")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    if is_tiny(weights_dir):
        logger.warning("%s holds tiny random test weights: depth maps are meaningless", weights_dir)
    unet_part = parts["depth_unet"]
    unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter.from_pretrained(
        unet_part.folder, torch_dtype=dtype, low_cpu_mem_usage=True, local_files_only=True
    )
    pipeline: DepthCrafterPipeline = _assemble(DepthCrafterPipeline, unet, parts, device, dtype, svd)
    return pipeline


def load_inpainting_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    svd: dict[str, object] | None = None,
) -> StereoInpaintingPipeline:
    """The StereoCrafter inpainting pipeline from ``weights_dir`` (same conventions as
    ``load_depth_pipeline``). Checks that the UNet takes the 9 input channels the pipeline builds."""
    from diffusers import UNetSpatioTemporalConditionModel

    from stereocrafter.models.inpainting import StereoInpaintingPipeline

    parts = resolve_stage(weights_dir, "inpainting")
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    if is_tiny(weights_dir):
        logger.warning("%s holds tiny random test weights: inpainting output is noise", weights_dir)
    unet_part = parts["inpainting_unet"]
    unet = UNetSpatioTemporalConditionModel.from_pretrained(
        unet_part.folder, torch_dtype=dtype, low_cpu_mem_usage=True, local_files_only=True
    )
    if unet.config.in_channels != 9:
        raise ValueError(
            f"{unet_part.folder} holds a UNet with {unet.config.in_channels} input channels; StereoCrafter's "
            "inpainting UNet takes 9 (noise, warped-video latents, mask): wrong weights?"
        )
    pipeline: StereoInpaintingPipeline = _assemble(StereoInpaintingPipeline, unet, parts, device, dtype, svd)
    return pipeline


def load_vda_pipeline(
    weights_dir: str | os.PathLike[str], *, device: torch.device | str = "cpu"
) -> VdaDepthPipeline:
    """Video Depth Anything Small from ``weights_dir`` (``models.vda_checkpoint.load_vda``: the
    published state dict, read with ``weights_only`` and loaded strictly). Its weights stay float32
    and it runs under float16 autocast on CUDA, as the published code does."""
    from stereocrafter.models.vda_checkpoint import load_vda
    from stereocrafter.models.vda_depth import VdaDepthPipeline

    part = resolve_stage(weights_dir, "vda")["vda"]
    if is_tiny(weights_dir):
        logger.warning("%s holds tiny random test weights: VDA depth maps are meaningless", weights_dir)
    model = load_vda(part.folder / VDA_CHECKPOINT, device=device)
    model.requires_grad_(False)
    return VdaDepthPipeline(model)


@dataclass(frozen=True)
class WarmupCall:
    """One model call a job of a served preset makes at the warm-up size: which model, and the
    shape it sees (frames, batch, latent or processing height x width)."""

    model: str  # "depthcrafter" | "inpainting" | "vda-small"
    frames: int
    batch: int
    size: tuple[int, int]


def warmup_calls(presets: Sequence[str], frame_size: tuple[int, int]) -> list[WarmupCall]:
    """The distinct model calls that jobs of ``presets`` make on a ``frame_size`` (height, width)
    clip long enough for full windows: each preset's depth window at its processing size, its
    inpainting chunk at its working size (latents: an eighth), with 2 in the batch under
    classifier-free guidance (DepthCrafter runs its unconditional pass as a second call): the
    shapes ``StereoPipeline.run`` gives these models."""
    from stereocrafter.config import StereoConfig
    from stereocrafter.models.inpainting import _padded
    from stereocrafter.stages.depth import processing_size
    from stereocrafter.stereo.merge import working_size

    height, width = frame_size
    calls: list[WarmupCall] = []
    for preset in presets:
        cfg = StereoConfig.from_preset(preset)
        depth_h, depth_w = processing_size(height, width, cfg)
        if cfg.depth_model == "depthcrafter":
            # one UNet call per pass: guidance runs a second call of batch 1, not a batch of 2
            depth = WarmupCall("depthcrafter", cfg.depth_window, 1, (depth_h // 8, depth_w // 8))
        else:
            from stereocrafter.models.vda_depth import WINDOW

            depth = WarmupCall(cfg.depth_model, WINDOW, 1, (depth_h, depth_w))
        work_h, work_w = working_size(height, width, cfg.inpaint_max_res, cfg.inpaint_multiple)
        latent = (_padded(work_h, cfg.tile_num) // 8, _padded(work_w, cfg.tile_num) // 8)
        inpaint = WarmupCall("inpainting", cfg.frames_chunk, 2 if cfg.inpaint_guidance > 1.0 else 1, latent)
        calls += [call for call in (depth, inpaint) if call not in calls]
    return calls


def _unet_call(unet: Any, call: WarmupCall, per_frame_context: bool) -> None:
    from stereocrafter.models.attention import set_feed_forward_chunking

    device, dtype = unet.device, unet.dtype
    channels = unet.config.in_channels
    sample = torch.zeros(call.batch, call.frames, channels, *call.size, device=device, dtype=dtype)
    # chunked or whole as a job's call of this shape would be now: the warm-up compiles that graph,
    # and on a small card it must not run out of memory where the job would not
    set_feed_forward_chunking(unet, call.batch, sample[:1])
    context = (call.frames if per_frame_context else 1, unet.config.cross_attention_dim)
    unet(
        sample,
        torch.tensor(1.0, device=device),
        encoder_hidden_states=torch.zeros(call.batch, *context, device=device, dtype=dtype),
        added_time_ids=torch.zeros(call.batch, 3, device=device, dtype=dtype),
        return_dict=False,
    )


def compile_models(
    pipeline: StereoPipeline,
    backend: str = "inductor",
    *,
    presets: Sequence[str] = PRESET_NAMES,
    warmup_size: tuple[int, int] | None = (576, 1024),
) -> list[WarmupCall]:
    """``torch.compile`` every loaded model that runs per window or chunk, in place
    (``nn.Module.compile``): DepthCrafter's UNet, VDA-S and the inpainting UNet, whichever are
    loaded (a turbo-only endpoint has no DepthCrafter). With ``warmup_size``, each served preset's
    calls at that frame size (``warmup_calls``) run once now, while ``/ping`` says 503, so that
    the first request of each preset at that size does not compile. Another size, or a preset's
    last, shorter window, compiles on its first use; from the second distinct shape on, torch
    compiles one graph with dynamic sizes (its automatic dynamic shapes) instead of one per shape.
    Returns the calls warmed up."""
    depthcrafter = pipeline.depth_stages.get("depthcrafter")
    vda = pipeline.depth_stages.get("vda-small")
    modules: dict[str, torch.nn.Module] = {"inpainting": pipeline.inpainting.unet}
    if depthcrafter is not None:
        modules["depthcrafter"] = depthcrafter.pipeline.unet
    if vda is not None:
        modules["vda-small"] = vda.pipeline.model
    for module in modules.values():
        module.compile(backend=backend)
    if warmup_size is None:
        return []
    calls = [c for c in warmup_calls(presets, warmup_size) if c.model in modules]
    with torch.no_grad():
        for call in calls:
            if call.model == "vda-small":
                assert vda is not None
                frames = torch.zeros(call.frames, 3, *call.size, device=vda.pipeline.device)
                vda.pipeline._window_depth(frames)
            else:
                _unet_call(modules[call.model], call, per_frame_context=call.model == "depthcrafter")
    return calls


def load_stereo_pipeline(
    weights_dir: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    config: StereoConfig | None = None,
    compile_backend: str | None = None,
    presets: Sequence[str] = PRESET_NAMES,
) -> StereoPipeline:
    """The models ``presets`` run (``catalog.models_of``), and nothing else: the inpainting always,
    DepthCrafter and/or Video Depth Anything as the presets' depth models say. The diffusion
    models share one copy of the SVD VAE and CLIP image encoder (loading them once saves about
    1.5 GB of GPU memory in fp16). Every missing file is reported at once, before anything loads.
    ``compile_backend`` (e.g. "inductor"): ``compile_models`` before returning, warmed up for the
    served ``presets``."""
    from stereocrafter.pipeline.run import StereoPipeline

    wanted = components_of(presets)
    missing = [c.describe_missing() for c in wanted if c.resolve(Path(weights_dir)) is None]
    if missing:
        raise WeightsMissingError(missing, str(weights_dir))
    models = models_of(presets)
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    svd = _load_svd_parts(resolve_stage(weights_dir, "inpainting"), device, dtype)
    depth_loaders: dict[str, Any] = {
        "depthcrafter": lambda: load_depth_pipeline(weights_dir, device=device, dtype=dtype, svd=svd),
        "vda-small": lambda: load_vda_pipeline(weights_dir, device=device),
    }
    depth = [depth_loaders[model]() for model in models if model in depth_loaders]
    inpainting = load_inpainting_pipeline(weights_dir, device=device, dtype=dtype, svd=svd)
    pipeline = StereoPipeline(depth, inpainting, config, tiny=is_tiny(weights_dir))
    if compile_backend:
        started = time.perf_counter()
        calls = compile_models(pipeline, compile_backend, presets=presets)
        logger.info(
            "models compiled (%s) and warmed up on %d shapes in %.0f s",
            compile_backend,
            len(calls),
            time.perf_counter() - started,
        )
    return pipeline
