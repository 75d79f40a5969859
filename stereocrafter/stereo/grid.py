"""The reference's 2x2 debug grid of stage 1 (left | inferno depth over occlusion | warped right), an
optional video beside a local conversion (``stereocrafter convert --save-grid``)."""

from __future__ import annotations

import numpy as np
import torch

from stereocrafter.stereo.compose import to_uint8


def inferno(values: torch.Tensor) -> torch.Tensor:
    """(T, 1, H, W) in [0, 1] -> (T, 3, H, W) through matplotlib's 256-entry "inferno" table, index
    floor(255 * v) as the reference's visualisation. Needs matplotlib (an optional dependency)."""
    try:
        from matplotlib import colormaps
    except ImportError as err:  # pragma: no cover - exercised only without matplotlib
        raise RuntimeError("the debug grid needs matplotlib: pip install matplotlib") from err
    table = torch.tensor(
        colormaps["inferno"](np.arange(256))[:, :3], dtype=torch.float32, device=values.device
    )
    index = (values[:, 0].clamp(0, 1) * 255).long()
    return table[index].permute(0, 3, 1, 2)


def debug_grid(
    left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor, warped: torch.Tensor
) -> np.ndarray:
    """The reference's 2x2 stage-1 grid: [left | inferno depth] over [occlusion mask | warped right],
    (T, 2H, 2W, 3) uint8."""
    top = torch.cat([left, inferno(depth)], dim=3)
    bottom = torch.cat([occlusion.expand(-1, 3, -1, -1), warped], dim=3)
    return to_uint8(torch.cat([top, bottom], dim=2)).permute(0, 2, 3, 1).cpu().numpy()
