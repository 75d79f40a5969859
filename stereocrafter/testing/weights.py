"""Tiny random weights in the exact on-disk layout of the published ones, for tests and demos.

``make_tiny_weights(root)`` writes seeded, randomly initialised, tiny models where
``stereocrafter.pipeline.loading`` expects the real ones: the same folders and file names (the
``.fp16.safetensors`` variants included), the same config keys and class names, the real SVD
scheduler and CLIP normalisation configs. The models are small (4-level VAE with scale factor 8,
CLIP at 224 px with 32-px patches, 2-level UNets with 8 and 9 input channels), so the whole
pipeline runs on a CPU in seconds. Their output is noise: never present it as a conversion. A
marker file (``stages.components.TINY_WEIGHTS_MARKER``) labels the directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

from stereocrafter.catalog import MIGAN_ONNX, MODELS
from stereocrafter.models.migan import MiganArchitecture, MiganGenerator
from stereocrafter.models.vda import CHECKPOINT as VDA_CHECKPOINT
from stereocrafter.models.vda import REPO as VDA_REPO
from stereocrafter.models.vda import VdaArchitecture, VideoDepthAnything
from stereocrafter.models.vda_checkpoint import to_published
from stereocrafter.weights.integrity import LOCK_NAME, sha256_of
from stereocrafter.weights.manifest import PUBLISHED, TINY_WEIGHTS_MARKER, WeightFile, to_json

SVD_REPO = MODELS["svd"].repo
DEPTH_REPO = MODELS["depthcrafter"].repo
INPAINTING_REPO = MODELS["stereocrafter"].repo
MIGAN_REPO = MODELS["migan"].repo

# The published SVD-xt-1.1 scheduler config (reference notes §3): real, not shrunk.
SVD_SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.24.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "set_alpha_to_one": False,
    "sigma_max": 700.0,
    "sigma_min": 0.002,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "timestep_type": "continuous",
    "trained_betas": None,
    "use_karras_sigmas": True,
}

# The published SVD feature_extractor config (CLIP normalisation).
SVD_PREPROCESSOR_CONFIG = {
    "crop_size": {"height": 224, "width": 224},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "rescale_factor": 0.00392156862745098,
    "size": {"shortest_edge": 224},
}

SVD_MODEL_INDEX = {
    "_class_name": "StableVideoDiffusionPipeline",
    "_diffusers_version": "0.24.0.dev0",
    "feature_extractor": ["transformers", "CLIPImageProcessor"],
    "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
    "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    "unet": ["diffusers", "UNetSpatioTemporalConditionModel"],
    "vae": ["diffusers", "AutoencoderKLTemporalDecoder"],
}

TINY_CROSS_ATTENTION_DIM = 32


def tiny_unet_kwargs(in_channels: int) -> dict[str, object]:
    """A 2-level spatio-temporal UNet with the published block types (first cross-attention down
    block, last plain one; mirrored up), 4 output channels, 3 added time ids."""
    return {
        "sample_size": 96,
        "in_channels": in_channels,
        "out_channels": 4,
        "down_block_types": ("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        "up_block_types": ("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        "block_out_channels": (32, 64),
        "addition_time_embed_dim": 8,
        "projection_class_embeddings_input_dim": 24,
        "layers_per_block": 1,
        "cross_attention_dim": TINY_CROSS_ATTENTION_DIM,
        "transformer_layers_per_block": 1,
        "num_attention_heads": (2, 4),
        "num_frames": 25,
    }


def _write_json(path: Path, data: Mapping[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def make_tiny_weights(root: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write tiny random weights for both stages under ``root``; returns ``root`` as a Path.

    Seeded: the same ``seed`` writes the same weights. The global RNG is left untouched.
    """
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from stereocrafter.models.depth import DiffusersUNetSpatioTemporalConditionModelDepthCrafter

    root = Path(root)
    svd = root / SVD_REPO
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=(32, 32, 32, 32),
            down_block_types=("DownEncoderBlock2D",) * 4,
            layers_per_block=1,
            latent_channels=4,
            sample_size=768,
            scaling_factor=0.18215,
            force_upcast=True,
        )
        vae.to(torch.float16).save_pretrained(svd / "vae", variant="fp16")

        clip_config = CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            image_size=224,
            patch_size=32,
            projection_dim=TINY_CROSS_ATTENTION_DIM,
            hidden_act="gelu",
            layer_norm_eps=1e-5,
        )
        clip = CLIPVisionModelWithProjection(clip_config)
        clip.to(torch.float16).save_pretrained(svd / "image_encoder", variant="fp16")

        depth_unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter(**tiny_unet_kwargs(8))
        depth_unet.to(torch.float16).save_pretrained(root / DEPTH_REPO)

        inpainting_unet = UNetSpatioTemporalConditionModel(**tiny_unet_kwargs(9))
        inpainting_unet.to(torch.float16).save_pretrained(root / INPAINTING_REPO / "unet_diffusers")
        write_tiny_vda(root)
        write_tiny_migan(root)

    _write_json(svd / "scheduler" / "scheduler_config.json", SVD_SCHEDULER_CONFIG)
    _write_json(svd / "feature_extractor" / "preprocessor_config.json", SVD_PREPROCESSOR_CONFIG)
    _write_json(svd / "model_index.json", SVD_MODEL_INDEX)
    label = (
        "Tiny randomly initialised test weights written by stereocrafter.testing.weights.make_tiny_weights.\n"
        "Their output is noise, not a depth map or a stereo conversion.\n"
    )
    for folder in (root, svd, root / DEPTH_REPO, root / INPAINTING_REPO, root / VDA_REPO, root / MIGAN_REPO):
        (folder / TINY_WEIGHTS_MARKER).write_text(label)
    # their own record, which a tiny directory is verified against (``integrity.expected_rows``); also
    # the manifest a test hands a service that downloads them (STEREOCRAFTER_WEIGHTS_MANIFEST)
    (root / LOCK_NAME).write_text(to_json(tiny_manifest(root)))
    return root


# Video Depth Anything in the published layout at a tiny size (``models.vda.architecture_of`` reads
# these sizes back from the file): 4 blocks of width 32, a 2x2 position grid, the head's channels
# small enough and the temporal modules' a multiple of 32 (their GroupNorm has 32 groups).
TINY_VDA = VdaArchitecture(hidden_size=32, layers=4, heads=1, image_size=28, taps=(0, 1, 2, 3),
                           out_channels=(8, 16, 32, 64), features=32)  # fmt: skip


def write_tiny_vda(root: str | os.PathLike[str]) -> Path:
    """A random ``TINY_VDA`` checkpoint at ``root/<VDA repo>/video_depth_anything_vits.pth``, a plain
    state dict in the published key layout (``models.vda.to_published``), as the real file is."""
    path = Path(root) / VDA_REPO / VDA_CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    model = VideoDepthAnything(TINY_VDA)
    with torch.no_grad():  # the library zero-initialises some layers; random everywhere shows more
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.2)
    torch.save(to_published(model), path)
    return path


# MI-GAN in the published layout at a tiny size (``models.migan.architecture_of`` reads it back):
# 64 px tiles, widths min(256 / res, 16).
TINY_MIGAN = MiganArchitecture(resolution=64, ch_base=256, ch_max=16)


def random_migan(arch: MiganArchitecture, seed: int = 0) -> MiganGenerator:
    """A generator of ``arch`` with every learned weight random (the noise strengths too, so that
    the noise buffers count); the fixed blur kernels stay the published ones."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MiganGenerator(arch)
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if not name.endswith(".filter.weight"):
                    parameter.normal_(0.0, 0.3)
    return model


def write_tiny_migan(root: str | os.PathLike[str]) -> Path:
    """A random ``TINY_MIGAN`` generator inside an ONNX pipeline at
    ``root/<MI-GAN repo>/migan_pipeline_v2.onnx``, exported as the published file was
    (``testing.migan_export``); the service converts it back."""
    from stereocrafter.testing.migan_export import export_pipeline

    return export_pipeline(random_migan(TINY_MIGAN), Path(root) / MIGAN_REPO / MIGAN_ONNX, size=96)


def tiny_commit(repo: str) -> str:
    """The commit a tiny repo is "at" (``testing.hub.HubServer`` serves it there)."""
    import hashlib

    return hashlib.sha1(repo.encode()).hexdigest()


def tiny_manifest(root: str | os.PathLike[str]) -> tuple[WeightFile, ...]:
    """The manifest of the tiny weights under ``root``: the published files (and each repo's marker)
    at ``tiny_commit``, with their real sizes and digests."""
    root = Path(root)
    rows = []
    for model in dict.fromkeys(row.model for row in PUBLISHED):
        published = [row for row in PUBLISHED if row.model == model]
        repo = published[0].repo
        for path in [*(row.path for row in published), TINY_WEIGHTS_MARKER]:
            file = root / repo / path
            rows.append(WeightFile(model, repo, tiny_commit(repo), path, file.stat().st_size, sha256_of(file),
                                   "tiny random test weights (stereocrafter.testing.weights)"))  # fmt: skip
    return tuple(rows)


def write_sample_clip(
    path: str | os.PathLike[str], frames: int = 48, width: int = 320, height: int = 192
) -> Path:
    """A short synthetic clip for demos: a bright disc moving over a textured background."""
    import numpy as np

    from stereocrafter.media.encode import VideoWriter

    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    path = Path(path)
    with VideoWriter(path, fps=24, width=width, height=height) as writer:
        for t in range(frames):
            background = 0.35 + 0.15 * np.sin(x / 23.0 + y / 31.0)
            cx = width * (0.3 + 0.4 * t / max(frames - 1, 1))
            disc = ((x - cx) ** 2 + (y - height / 2) ** 2) < (height / 4) ** 2
            rgb = np.stack([background + 0.4 * disc, background, background + 0.2 * (1 - disc)], axis=-1)
            writer.write((np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)[None])
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m stereocrafter.testing.weights DIR [--clip NAME] [--frames N]``: tiny weights in
    DIR/tiny-weights and a sample clip DIR/NAME (default sample.mp4, 48 frames)."""
    import argparse

    parser = argparse.ArgumentParser(description="write demo assets: tiny random weights and a sample clip")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--clip", default="sample.mp4", help="file name of the clip inside DIRECTORY")
    parser.add_argument("--frames", type=int, default=48, help="frames of the clip (24 fps)")
    args = parser.parse_args(argv)
    weights = args.directory / "tiny-weights"
    if not (weights / TINY_WEIGHTS_MARKER).is_file():
        make_tiny_weights(weights)
    clip = write_sample_clip(args.directory / args.clip, frames=args.frames)
    print(f"tiny random weights (NOT real models) in {weights}; sample clip {clip}")


if __name__ == "__main__":
    main()
