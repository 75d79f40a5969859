"""``models.svd``: the SVD pipeline parts both diffusion stages share (the CLIP context of a chunk)."""

from __future__ import annotations

import torch

from stereocrafter.models.inpainting import (
    StereoInpaintingPipeline,
)


def inputs(t: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    warped = torch.rand((t, 3, h, w), generator=gen)
    mask = torch.rand((t, 1, h, w), generator=gen)  # fractional: the pipeline binarises at 0.5
    return warped, mask


# --- planning ------------------------------------------------------------------------------


def test_clip_context_is_the_first_frame_only(inpainting_pipeline: StereoInpaintingPipeline) -> None:
    pipe = inpainting_pipeline
    warped, mask = inputs(4, 64, 64)
    contexts = []
    handle = pipe.unet.register_forward_pre_hook(
        lambda m, a, k: contexts.append(k["encoder_hidden_states"][1].clone()), with_kwargs=True
    )
    try:
        pipe.denoise_tile(warped, mask, num_inference_steps=1)
        changed = warped.clone()
        changed[1:] = torch.rand_like(changed[1:])
        pipe.denoise_tile(changed, mask, num_inference_steps=1)
        changed[0] = 1 - changed[0]
        pipe.denoise_tile(changed, mask, num_inference_steps=1)
    finally:
        handle.remove()
    torch.testing.assert_close(contexts[0], contexts[1], rtol=0, atol=0)  # later frames do not matter
    assert (contexts[0] - contexts[2]).abs().max() > 1e-6  # the first one does


def test_both_diffusion_stages_run_on_the_svd_pipeline(inpainting_pipeline, depth_pipeline) -> None:  # type: ignore[no-untyped-def]
    from stereocrafter.models.svd import SVDPipeline

    assert isinstance(inpainting_pipeline, SVDPipeline) and isinstance(depth_pipeline, SVDPipeline)
