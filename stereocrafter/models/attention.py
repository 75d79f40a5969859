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
