"""What the stages load, and the parts the diffusion stages share: a model component's files
(``Component``: where it may live in its Hugging Face repo, which files it needs), Stable Video
Diffusion's VAE, CLIP image encoder, feature extractor and scheduler (both SVD-based stages run on
one copy of them), the random test weights' marker, and how a diffusion UNet is prepared and warmed
up. Each stage module declares its own components; the layout of ``WEIGHTS_DIR`` is the union:

    WEIGHTS_DIR/<repo id>/<subfolder>/<config and weight files>

A component's ``subfolders`` are tried in order (the first complete one wins), its ``weights`` are
alternatives, preferred first (the fp16 variant before the full-precision file).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import torch

from stereocrafter.catalog import MODELS
from stereocrafter.errors import WeightsMissingError
from stereocrafter.stages.base import WarmupCall
from stereocrafter.weights.integrity import is_tiny

logger = logging.getLogger(__name__)

SVD_REPO = MODELS["svd"].repo  # stabilityai/stable-video-diffusion-img2vid-xt-1-1


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


@dataclass(frozen=True)
class Resolved:
    component: Component
    folder: Path
    subfolder: str
    variant: str | None


def resolve_all(
    weights_dir: str | os.PathLike[str], components: tuple[Component, ...]
) -> dict[str, Resolved]:
    """Locate every one of ``components``; raise ``WeightsMissingError`` listing all that are
    missing."""
    root = Path(weights_dir)
    found: dict[str, Resolved] = {}
    missing: list[str] = []
    for component in components:
        resolved = component.resolve(root)
        if resolved is None:
            missing.append(component.describe_missing())
        else:
            found[component.name] = resolved
    if missing:
        raise WeightsMissingError(missing, str(root))
    return found


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
SVD_COMPONENTS = (VAE, IMAGE_ENCODER, FEATURE_EXTRACTOR, SCHEDULER)


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
      pipelines (``attention.set_feed_forward_chunking``), from its shape and the memory left.
      Chunked, a 110-frame depth window at 1024x576 needs 9.7 GB of activations instead of
      17.5 GB, for the same FLOPs but 3x the launches (bench/ff_chunking.py).
    """
    from stereocrafter.models.attention import use_batch_split_attention

    use_batch_split_attention(unet)


def load_svd_parts(parts: dict[str, Resolved], device: torch.device, dtype: torch.dtype) -> dict[str, object]:
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


def shared_svd(
    shared: dict[str, Any], weights_dir: str | os.PathLike[str], device: torch.device, dtype: torch.dtype
) -> dict[str, object]:
    """SVD's parts, loaded once per ``shared`` (one load of the pipeline: loading them once for
    both diffusion stages saves about 1.5 GB of GPU memory in fp16)."""
    if "svd" not in shared:
        shared["svd"] = load_svd_parts(resolve_all(weights_dir, SVD_COMPONENTS), device, dtype)
    parts: dict[str, object] = shared["svd"]
    return parts


def assemble(
    pipeline_class: Any,
    unet: Any,
    parts: dict[str, Resolved],
    device: torch.device,
    dtype: torch.dtype,
    svd: dict[str, object] | None,
) -> Any:
    """A stage's pipeline from its UNet and the (possibly shared) SVD parts, for inference only."""
    prepare_unet(unet)
    svd = svd or load_svd_parts(parts, device, dtype)
    pipeline = pipeline_class(unet=unet.to(device).eval(), **svd)
    for module in (pipeline.unet, pipeline.vae, pipeline.image_encoder):
        module.requires_grad_(False)
    return pipeline


def load_unet(
    weights_dir: str | os.PathLike[str],
    components: tuple[Component, ...],
    unet: Component,
    unet_class: Any,
    *,
    device: torch.device | str,
    dtype: torch.dtype | None,
    noise: str,
) -> tuple[Any, dict[str, Resolved], torch.device, torch.dtype]:
    """A diffusion stage's UNet and where its other parts are: every missing file reported at once
    before anything loads, the device and dtype settled (fp16 on CUDA, fp32 on CPU by default), the
    tiny test weights named in the log (``noise``: what their output is)."""
    parts = resolve_all(weights_dir, components)
    device = torch.device(device)
    dtype = dtype or default_dtype(device)
    if is_tiny(weights_dir):
        logger.warning("%s holds tiny random test weights: %s", weights_dir, noise)
    model = unet_class.from_pretrained(
        parts[unet.name].folder, torch_dtype=dtype, low_cpu_mem_usage=True, local_files_only=True
    )
    return model, parts, device, dtype


def warm_up_unet(unet: Any, call: WarmupCall, per_frame_context: bool) -> None:
    """One call of a spatio-temporal UNet of ``call``'s shape, on zeros (the compile warm-up)."""
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


class UNetStage:
    """What the two SVD-based stages share: their device, the UNet they compile and whose every
    call advances the stage's progress, the VAE decoder before whose calls the stop check runs,
    and the warm-up call of their UNet (``per_frame_context``: DepthCrafter's CLIP context is one
    embedding per frame, StereoCrafter's one per chunk)."""

    per_frame_context: ClassVar[bool]
    load_pipeline: ClassVar[Callable[..., Any]]  # the stage's loader, given the shared SVD parts
    pipeline: Any

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline

    @classmethod
    def load(
        cls, weights_dir: str | os.PathLike[str], *, device: torch.device, dtype: torch.dtype,
        shared: dict[str, Any],
    ) -> Self:  # fmt: skip
        """The stage on ``device``, on SVD parts loaded once per ``shared`` (``shared_svd``)."""
        svd = shared_svd(shared, weights_dir, device, dtype)
        return cls(cls.load_pipeline(weights_dir, device=device, dtype=dtype, svd=svd))

    @property
    def device(self) -> torch.device:
        device: torch.device = self.pipeline.device
        return device

    @property
    def compiled(self) -> torch.nn.Module:
        unet: torch.nn.Module = self.pipeline.unet
        return unet

    @property
    def watched(self) -> torch.nn.Module:
        return self.compiled

    @property
    def checked(self) -> list[torch.nn.Module]:
        vae = getattr(self.pipeline, "vae", None)
        return [vae.decoder] if vae is not None else []

    def warm_up(self, call: WarmupCall) -> None:
        warm_up_unet(self.pipeline.unet, call, per_frame_context=self.per_frame_context)
