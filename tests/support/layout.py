"""The files DepthCrafter's stage reads, as the published repos lay them out."""

from __future__ import annotations

from stereocrafter.testing.weights import DEPTH_REPO, SVD_REPO

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
