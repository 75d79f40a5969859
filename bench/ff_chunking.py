"""Feed-forward chunking, counted on the real SVD UNets on the meta device (no weights, no GPU).

For each call shape the presets make (batch, frames, latent height x width), with diffusers'
``enable_forward_chunking(1, 0)`` and without: the FeedForward calls, the aten ops dispatched
(what a GPU launches, before fusion) and the peak live bytes of one UNet call. The per-token peaks
are the constants ``models.attention`` decides with (chunking only where the unchunked peak would
not fit in the free memory); ``--check`` fails when a counted peak per token exceeds them (the
decision would let a call run out of memory) or falls 10 % below, or when a chunked call is not
cheaper in memory.

    python -m bench.ff_chunking            # every shape, about a minute on 2 CPU cores
    python -m bench.ff_chunking --smoke    # turbo's inpainting shape only (CI)
    python -m bench.ff_chunking --check
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from bench.flops import DTYPE, LiveBytes, efficient_sdpa
from bench.gpu_depth import REAL_UNET
from stereocrafter.models.attention import (
    CHUNKED_BYTES_PER_TOKEN,
    UNCHUNKED_BYTES_PER_TOKEN,
    chunk_feed_forward,
    use_batch_split_attention,
)

# (name, model, batch, frames, latent): the calls of the presets at 1024x576 and 1920x1080
SHAPES = [
    ("inpainting, fast 576p and 1080p (1 pass)", "inpaint", 1, 23, (72, 128)),
    ("inpainting, turbo 1080p and 576p", "inpaint", 1, 23, (32, 56)),
    ("inpainting, reference 1080p (CFG batch 2)", "inpaint", 2, 23, (136, 240)),
    ("depth, fast window (110 frames)", "depth", 1, 110, (72, 128)),
    ("depth, reference window (70 frames)", "depth", 1, 70, (72, 128)),
]
SMOKE = [SHAPES[1]]


class OpCount(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops += 1
        return func(*args, **(kwargs or {}))


def build(kind: str) -> Any:
    from diffusers import UNetSpatioTemporalConditionModel

    from stereocrafter.models.depth import DiffusersUNetSpatioTemporalConditionModelDepthCrafter

    with torch.device("meta"):
        if kind == "depth":
            unet = DiffusersUNetSpatioTemporalConditionModelDepthCrafter(**REAL_UNET).to(DTYPE)
        else:
            unet = UNetSpatioTemporalConditionModel(**dict(REAL_UNET, in_channels=9)).to(DTYPE)
    unet.to("meta").eval()
    use_batch_split_attention(unet)
    return unet


def measure(unet: Any, batch: int, frames: int, latent: tuple[int, int], chunked: bool) -> dict[str, Any]:
    from diffusers.models.attention import FeedForward

    chunk_feed_forward(unet, 1 if chunked else None)
    calls = [0]
    hooks = [
        m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
        for m in unet.modules()
        if isinstance(m, FeedForward)
    ]
    per_frame = unet.config.in_channels == 8  # DepthCrafter: one CLIP embedding per frame
    sample = torch.empty(batch, frames, unet.config.in_channels, *latent, device="meta", dtype=DTYPE)
    context = torch.empty(batch, frames if per_frame else 1, 1024, device="meta", dtype=DTYPE)
    kwargs = {"encoder_hidden_states": context, "added_time_ids": torch.empty(batch, 3, device="meta",
              dtype=DTYPE), "return_dict": False}  # fmt: skip
    ops = OpCount()
    original = torch.nn.functional.scaled_dot_product_attention
    torch.nn.functional.scaled_dot_product_attention = efficient_sdpa  # meta-friendly, as flops.py
    try:
        with torch.no_grad(), ops, LiveBytes() as live:
            out = unet(sample, torch.empty((), device="meta"), **kwargs)
            del out
    finally:
        torch.nn.functional.scaled_dot_product_attention = original
        for hook in hooks:
            hook.remove()
    tokens = batch * frames * latent[0] * latent[1]
    return {"ff_calls": calls[0], "ops": ops.ops, "peak_gb": live.peak / 1e9, "per_token": live.peak / tokens}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    unets: dict[str, Any] = {}
    failed = []
    print("feed-forward chunking on the real SVD UNets (meta device, bf16): per UNet call")
    print(f"{'call':44} {'FF calls':>13} {'aten ops':>15} {'peak GB':>13} {'B/token':>13}")
    for name, kind, batch, frames, latent in SMOKE if args.smoke else SHAPES:
        unet = unets.get(kind) or unets.setdefault(kind, build(kind))
        off = measure(unet, batch, frames, latent, chunked=False)
        on = measure(unet, batch, frames, latent, chunked=True)
        shape = f"{name} ({batch}x{frames}x{latent[0]}x{latent[1]})"
        print(shape)
        peaks = f"{off['peak_gb']:>5.2f} -> {on['peak_gb']:<5.2f}"
        per_token = f"{off['per_token']:>6.0f} -> {on['per_token']:<5.0f}"
        print(f"{'':44} {off['ff_calls']:>6} -> {on['ff_calls']:<5} {off['ops']:>7} -> {on['ops']:<6} "
              f"{peaks} {per_token}")  # fmt: skip
        for label, counted, constant in (("unchunked", off["per_token"], UNCHUNKED_BYTES_PER_TOKEN),
                                         ("chunked", on["per_token"], CHUNKED_BYTES_PER_TOKEN)):  # fmt: skip
            if not 0.9 * constant <= counted <= constant:
                failed.append(f"{shape}: {label} {counted:.0f} B/token, models.attention says {constant}")
        if on["peak_gb"] >= off["peak_gb"]:
            failed.append(f"{shape}: chunking does not lower the peak")
    print(f"constants (models.attention): unchunked {UNCHUNKED_BYTES_PER_TOKEN} B/token, "
          f"chunked {CHUNKED_BYTES_PER_TOKEN}; counted in {time.perf_counter() - started:.0f} s")  # fmt: skip
    for line in failed:
        print("CHECK FAILED:", line)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
