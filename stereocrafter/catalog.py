"""The models a preset runs, with their Hugging Face repos and licences: data only (no torch here).

A preset's depth model is its table's ``depth_model`` and its inpainting model its
``inpainting_model`` (``presets.PRESETS``; defaults ``depthcrafter`` and ``stereocrafter``, the
diffusion models on Stable Video Diffusion's VAE and CLIP image encoder). ``instant`` and ``clean``
run no diffusion model: VDA-S with the weight-free ``background-fill`` or with MI-GAN. From
this one table come what an endpoint downloads and loads for the presets it serves
(``STEREOCRAFTER_PRESETS``), what ``doctor`` lists, and the README's licence column.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from stereocrafter.presets import PRESET_NAMES, PRESETS, check_preset

DEFAULT_DEPTH_MODEL = "depthcrafter"
DEFAULT_INPAINTING_MODEL = "stereocrafter"
VDA_CHECKPOINT = "video_depth_anything_vits.pth"  # the published file of Video-Depth-Anything-Small
# MI-GAN's published 512 px Places2 generator, as its authors' Hugging Face repo holds it: inside their
# ONNX pipeline (``models.migan_onnx`` converts it back to the state dict; ``manifest``).
MIGAN_ONNX = "migan_pipeline_v2.onnx"


@dataclass(frozen=True)
class ModelCard:
    name: str
    role: str  # "depth" | "inpainting" | "shared" (the SVD parts the diffusion models run on)
    repo: str
    licence: str  # of the weights (the code's, where it differs, is in ``code_licence``)
    about: str
    gated: bool = False  # the repo asks for an accepted licence and a token (SVD)
    code_licence: str = ""  # the published code's licence, when it is not the weights'


MODELS: Mapping[str, ModelCard] = MappingProxyType(
    {
        "depthcrafter": ModelCard(
            "depthcrafter", "depth", "tencent/DepthCrafter", "research use only (DepthCrafter LICENSE)",
            "video diffusion depth (an SVD UNet), 1.5 B parameters",
        ),
        "vda-small": ModelCard(
            "vda-small", "depth", "depth-anything/Video-Depth-Anything-Small", "Apache-2.0",
            "Video Depth Anything Small: ViT-S + DPT head with temporal attention, 29 M parameters",
        ),
        "stereocrafter": ModelCard(
            "stereocrafter", "inpainting", "TencentARC/StereoCrafter",
            "research use only (StereoCrafter LICENSE/NOTICE)", "video diffusion inpainting (an SVD UNet)",
        ),
        "migan": ModelCard(
            "migan", "inpainting", "andraniksargsyan/migan", "MIT (MI-GAN LICENSE-WEIGHTS)",
            "MI-GAN (ICCV 2023): a 5.97 M-parameter image inpainting GAN, 512x512 tiles", code_licence="MIT",
        ),
        "background-fill": ModelCard(
            "background-fill", "inpainting", "", "no weights",
            "weight-free fill from the hole's background side and from frames seen before (stereo.fill)",
            code_licence="this repository's",
        ),
        "svd": ModelCard(
            "svd", "shared", "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
            "Stability AI community licence (gated, non-commercial)",
            "the VAE and CLIP image encoder both diffusion models run on", gated=True,
        ),
    }
)  # fmt: skip
DEPTH_MODELS: tuple[str, ...] = tuple(name for name, card in MODELS.items() if card.role == "depth")
INPAINTING_MODELS: tuple[str, ...] = tuple(name for name, card in MODELS.items() if card.role == "inpainting")
# What a model runs on besides its own weights (the diffusion models share SVD's VAE and encoder).
SHARED: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"depthcrafter": ("svd",), "stereocrafter": ("svd",)}
)


def check_depth_model(name: str) -> str:
    """``name`` if it is a depth model, else ``ValueError`` naming them."""
    if name not in DEPTH_MODELS:
        raise ValueError(f"unknown depth model {name!r}; choose one of {', '.join(DEPTH_MODELS)}")
    return name


def check_inpainting_model(name: str) -> str:
    """``name`` if it is an inpainting model, else ``ValueError`` naming them."""
    if name not in INPAINTING_MODELS:
        raise ValueError(f"unknown inpainting model {name!r}; choose one of {', '.join(INPAINTING_MODELS)}")
    return name


def depth_model_of(preset: str) -> str:
    """The depth model ``preset`` runs."""
    return str(PRESETS[check_preset(preset)].get("depth_model", DEFAULT_DEPTH_MODEL))


def inpainting_model_of(preset: str) -> str:
    """The inpainting model ``preset`` runs."""
    return str(PRESETS[check_preset(preset)].get("inpainting_model", DEFAULT_INPAINTING_MODEL))


def models_of(presets: Iterable[str]) -> tuple[str, ...]:
    """Every model the presets run, with what those run on, in ``MODELS`` order."""
    names = tuple(presets)
    stages = {depth_model_of(p) for p in names} | {inpainting_model_of(p) for p in names}
    wanted = stages | {shared for model in stages for shared in SHARED.get(model, ())}
    return tuple(name for name in MODELS if name in wanted)


# Resident GPU memory per model, GB (bf16/fp16 weights; VDA-S float32), and per preset the largest
# model call's activations at 1920x1080 with one tile (feed-forward chunked: the least it needs),
# both counted on the published architectures on the meta device by bench/flops.py, whose --check
# fails when these drift from its counts. Not counted: the pipeline's own full-size frame tensors
# (a chunk's views, depth and mask on the device), which a GPU run measures (bench/gpu_check.sh
# prints max_memory_allocated beside the counted figure).
MODEL_GB: Mapping[str, float] = MappingProxyType(
    {"depthcrafter": 3.05, "vda-small": 0.12, "stereocrafter": 3.05, "svd": 1.53, "migan": 0.01,
     "background-fill": 0.0}
)  # fmt: skip
ACTIVATIONS_GB_1080P: Mapping[str, float] = MappingProxyType(
    {"reference": 15.54, "fast": 9.75, "turbo": 1.41, "instant": 1.63, "clean": 1.41}
)


def models_with_files(presets: Iterable[str]) -> tuple[str, ...]:
    """The models of ``presets`` that load weight files (the weight-free fill has none)."""
    return tuple(name for name in models_of(presets) if MODELS[name].repo)


def needs_token(presets: Iterable[str]) -> bool:
    """True when a model the presets run sits in a gated repo (SVD): the download needs a token."""
    return any(MODELS[name].gated for name in models_of(presets))


def commercial_ok(preset: str) -> bool:
    """True when no model the preset runs is research-only or non-commercial (every weight of it is
    under a permissive licence or there is none)."""
    return all(
        not MODELS[name].gated and "research" not in MODELS[name].licence for name in models_of([preset])
    )


def served_peak_gb(presets: Iterable[str]) -> tuple[float, float]:
    """(resident weights, peak) in GB of an endpoint serving ``presets`` at 1080p: every model of
    every served preset stays loaded, and one job at a time runs on top of them."""
    names = tuple(presets)
    resident = sum(MODEL_GB[model] for model in models_of(names))
    return resident, resident + max(ACTIVATIONS_GB_1080P[p] for p in names)


def parse_presets(raw: str) -> tuple[str, ...]:
    """``STEREOCRAFTER_PRESETS``: comma-separated preset names (empty: every preset), each checked,
    in the order given, without repeats."""
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if not names:
        return PRESET_NAMES
    return tuple(dict.fromkeys(check_preset(name) for name in names))
