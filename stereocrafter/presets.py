"""Named conversion presets: data only, one table each (no torch here).

A preset is the set of ``StereoConfig`` fields it changes from the defaults, which are the
published pipeline's. The request's ``preset``, the CLI's ``--preset`` and
``STEREOCRAFTER_PRESET`` are looked up here; ``StereoConfig.from_preset`` applies a table.

- ``reference``: the published StereoCrafter procedure, bit-faithful (depth 8 steps, CFG 1.2,
  window 70/25; inpainting 8 steps, CFG 1.01, the whole frame at full resolution).
- ``fast``: the same models, run as their authors run them when speed matters:
  - depth with DepthCrafter's own published inference defaults, the `main` arguments of
    Tencent/DepthCrafter's run.py (also listed in the team's reference notes §1.1): 5 steps,
    guidance 1.0 (one UNet pass, no unconditional one), window 110, overlap 25, max_res 1024;
  - inpainting with a single conditional pass (guidance exactly 1.0 instead of 1.01, which
    was eps_c + 0.01 (eps_c - eps_u): a second UNet pass for a 1% nudge), still 8 steps;
  - inpainting at a working resolution of at most 1024 px on the long side, whatever the source;
    its result is resized back to the source size and used ONLY inside the occlusion mask,
    dilated by ``hole_dilate_px`` and feathered over ``hole_feather_px``. Everywhere else the
    right view is the forward-splatted source pixel, exactly (full-resolution texture kept).
- ``turbo``: cost per frame first, on a licence-clean depth model:
  - depth with Video Depth Anything Small (``depth_model: vda-small``, Apache-2.0) and its
    published procedure (input size 518, windows of 32 with overlap 10; ``models.vda_depth``), about
    80x cheaper per frame than `fast`'s DepthCrafter stage (0.38 against 30.6 TFLOP, counted);
  - inpainting as `fast` (one conditional pass, 8 steps, merged only into the dilated, feathered
    holes), at a working size of at most 512 px on the long side whose sides are multiples of 64,
    the pair closest to the source's aspect ratio (1920x1080 -> 448x256; 4:3 -> 512x384).

- ``instant``: VDA-S depth as ``turbo``, and no learned inpainting: the weight-free
  ``background-fill`` (``stereo.fill``) fills each hole at the source size from its background
  side (the neighbour with the smaller disparity) and from what frames seen before showed there;
  merged into the holes grown by 1 px and feathered over 2.
- ``clean``: VDA-S depth and MI-GAN (MIT code and weights) on 512x512 tiles of a working size of
  at most 1024 px, only tiles with holes, the foreground beside each hole hidden from its
  context; merged into the holes grown by 2 px and feathered over 2. With ``instant`` the only
  presets whose every weight may be used commercially (``catalog.commercial_ok``).

Which model each preset runs and its licence: ``catalog``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from stereocrafter.echo import echo

DEFAULT_PRESET = "reference"

PRESETS: Mapping[str, Mapping[str, Any]] = MappingProxyType(
    {
        "reference": MappingProxyType({}),
        "fast": MappingProxyType(
            {
                "depth_steps": 5,
                "depth_guidance": 1.0,
                "depth_window": 110,
                "depth_overlap": 25,
                "inpaint_guidance": 1.0,
                "inpaint_max_res": 1024,
                "holes_only": True,
                "hole_dilate_px": 4,
                "hole_feather_px": 4,
            }
        ),
        "turbo": MappingProxyType(
            {
                "depth_model": "vda-small",
                "inpaint_guidance": 1.0,
                "inpaint_max_res": 512,
                "inpaint_multiple": 64,
                "holes_only": True,
                "hole_dilate_px": 4,
                "hole_feather_px": 4,
            }
        ),
        "instant": MappingProxyType(
            {
                "depth_model": "vda-small",
                "inpainting_model": "background-fill",
                "holes_only": True,
                "hole_dilate_px": 1,
                "hole_feather_px": 2,
            }
        ),
        "clean": MappingProxyType(
            {
                "depth_model": "vda-small",
                "inpainting_model": "migan",
                "inpaint_max_res": 1024,
                "holes_only": True,
                "hole_dilate_px": 2,
                "hole_feather_px": 2,
            }
        ),
    }
)
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)

# Peak GPU memory of a 1920x1080 conversion with one tile, GB: the preset's models' resident weights
# (bf16; VDA-S float32) plus the largest model call's activations, counted on fake tensors by
# bench/flops.py (not yet measured on a GPU). ``stereocrafter doctor`` compares the free GPU memory
# with it.
PEAK_GPU_GB_1080P: Mapping[str, float] = MappingProxyType(
    {"reference": 23.2, "fast": 17.4, "turbo": 6.1, "instant": 1.7, "clean": 1.5}
)


def check_preset(name: str) -> str:
    """``name`` if it is a preset, else ``ValueError`` listing the names: the one check and message
    of the request schema, the CLI, the settings and ``StereoConfig``."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {echo(name, 40)}; choose one of {', '.join(PRESET_NAMES)}")
    return name
