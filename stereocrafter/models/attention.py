"""Attention within CUDA's launch limits at every supported size.

The temporal attention of the spatio-temporal UNets attends over frames at every latent pixel:
its batch is (CFG passes) x (latent height) x (latent width). At 1920x1080 with one inpainting
tile that was 2 x 144 x 240 = 69,120 sequences (2 x 136 x 240 = 65,280 with the 64-px padding),
while some SDPA kernels launch one grid block row per batch entry and CUDA caps a grid's y and z
dimensions at 65,535. ``BatchSplitAttnProcessor`` cuts such a batch into slices of at most
``max_batch`` sequences and runs diffusers' ``AttnProcessor2_0`` on each: attention never mixes
batch entries, so the result is the unsplit one, slice by slice (tested on the CPU).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

CUDA_GRID_LIMIT = 65_535


class BatchSplitAttnProcessor:
    """``AttnProcessor2_0`` on slices of at most ``max_batch`` batch entries."""

    def __init__(self, max_batch: int = CUDA_GRID_LIMIT) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.max_batch = max_batch
        self.inner = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        batch = hidden_states.shape[0]
        if batch <= self.max_batch:
            out: torch.Tensor = self.inner(
                attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs
            )
            return out
        parts = []
        for start in range(0, batch, self.max_batch):
            piece = slice(start, start + self.max_batch)
            parts.append(
                self.inner(
                    attn,
                    hidden_states[piece],
                    None if encoder_hidden_states is None else encoder_hidden_states[piece],
                    None if attention_mask is None else attention_mask[piece],
                    None if temb is None else temb[piece],
                    **kwargs,
                )
            )
        return torch.cat(parts)


def use_batch_split_attention(model: torch.nn.Module, max_batch: int = CUDA_GRID_LIMIT) -> None:
    """Every attention layer of ``model`` (a diffusers model) through ``BatchSplitAttnProcessor``."""
    model.set_attn_processor(BatchSplitAttnProcessor(max_batch))  # type: ignore[operator]


# --- feed-forward chunking, only when the memory needs it -------------------------------------
#
# diffusers' ``enable_forward_chunking`` runs each transformer block's feed-forward one frame (or one
# frame step) at a time: the GEGLU's 8x-wide intermediate of a whole window is what sets a UNet
# call's peak. It costs launches, not FLOPs: on the real inpainting UNet at (1, 23, 72, 128) it
# turns 48 feed-forward calls into 1,104 and the call's 4,799 aten ops into 17,247, on a 110-frame
# depth window 4,796 into 65,964 (bench/ff_chunking.py), which at small latents leaves the GPU
# waiting on the host. So it is on only for the calls whose unchunked peak would not fit in the
# memory the process has (``available_bytes``: a figure that does not move with other processes).
#
# Peak live bytes of one UNet call per latent token (batch x frames x latent height x width) at
# 2 bytes an element, counted on the real SVD UNets on the meta device by bench/ff_chunking.py
# (17,280-18,009 unchunked, 9,600-10,329 chunked over the presets' shapes; the most here), which
# fails (--check) when a count exceeds these or falls 10 % below.
UNCHUNKED_BYTES_PER_TOKEN = 18_100
CHUNKED_BYTES_PER_TOKEN = 10_400
HEADROOM = 0.9  # of ``available_bytes``: the allocator's fragmentation, the decode that follows


def available_bytes(device: torch.device) -> int:
    """What a model call on ``device`` may allocate, as a figure that is the same every time the same
    work runs in the same process: the device's total memory less what this process's live tensors
    hold (CUDA: the loaded models and the job's own tensors), or the machine's RAM (CPU).

    Not the memory free at the moment: chunked and unchunked feed-forwards differ in the last bits
    (1e-6 on the tiny UNet), so a choice that followed other processes' use of the card, or what the
    caching allocator happened to keep, would make the same film come out differently from run to
    run. A process that loaded more models (a service serving every preset) has less left than one
    that loaded one (``stereocrafter convert``) and may chunk a call the other runs whole."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        return int(total - torch.cuda.memory_allocated(device))
    return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def needs_chunking(tokens: int, element_size: int, available: int) -> bool:
    """Chunk a call of ``tokens`` latent tokens when its unchunked peak would not fit."""
    return tokens * UNCHUNKED_BYTES_PER_TOKEN * element_size / 2 > HEADROOM * available


def set_feed_forward_chunking(
    unet: Any, batch: int, latents: torch.Tensor, available: int | None = None
) -> bool:
    """Turn ``unet``'s feed-forward chunking on or off for its calls on ``batch`` copies of
    ``latents`` (1, frames, c, h, w), from their size and the memory left (``available_bytes``;
    ``available``: for tests); True when on. Switching costs nothing eager; a compiled UNet keeps
    a graph per setting."""
    _, frames, _, height, width = latents.shape
    if available is None:
        available = available_bytes(latents.device)
    chunk = needs_chunking(batch * frames * height * width, latents.element_size(), available)
    if getattr(unet, "_stereocrafter_ff_chunking", None) != chunk:
        chunk_feed_forward(unet, 1 if chunk else None)
        unet._stereocrafter_ff_chunking = chunk
    return chunk


def chunk_feed_forward(unet: torch.nn.Module, size: int | None) -> None:
    """Every transformer block's feed-forward in chunks of ``size`` along dim 0 (one frame, or one
    frame step), or whole (None): diffusers' ``enable_forward_chunking``, which has no way back."""
    for module in unet.modules():
        setter = getattr(module, "set_chunk_feed_forward", None)
        if callable(setter):
            setter(chunk_size=size, dim=0)
