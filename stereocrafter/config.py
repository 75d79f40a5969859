"""The run config: every knob of one conversion, as data, with the published defaults declared here
once (no torch here: the schema, the CLI, the settings and the client's side may build it).

``StereoConfig()`` is the reference's run (the StereoCrafter scripts' call of DepthCrafter and of
the inpainting, reference notes §1.1 and §2); a preset (``presets.PRESETS``) is a table of the
fields it changes, applied by ``StereoConfig.from_preset``, and the config carries the preset's
name (``preset``) to wherever it is shown (the answer, the report). The model code reads its
defaults from here (``models.depth.DEFAULT_STEPS`` is ``REFERENCE.depth_steps``).

The edge (the request schema, the CLI) builds the config once with ``from_preset``, which checks the
preset's name; what is below trusts it (the pipeline's own input check aside: are the preset's
models loaded here). ``__post_init__`` checks what no edge's bounds cover
(knob combinations, the fields a test may set directly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stereocrafter.bounds import (
    DEFAULT_MAX_DISP,
    DEFAULT_SEED,
    VDA_INPUT_SIZE,
    VDA_PATCH,
    check_max_disp,
    check_seed,
    check_tile_num,
)
from stereocrafter.catalog import (
    DEFAULT_DEPTH_MODEL,
    DEFAULT_INPAINTING_MODEL,
    check_depth_model,
    check_inpainting_model,
)
from stereocrafter.errors import PresetNotServedError
from stereocrafter.presets import DEFAULT_PRESET, PRESETS, check_preset

if TYPE_CHECKING:
    from stereocrafter.settings import Settings


@dataclass(frozen=True, kw_only=True)
class StereoConfig:
    """Every parameter of the two stages; defaults are the reference's."""

    preset: str = DEFAULT_PRESET  # the name of the table applied (``from_preset``); shown, not read
    max_disp: float = DEFAULT_MAX_DISP
    # Which depth model runs (``catalog.DEPTH_MODELS``, a stage of ``stages.DEPTH_STAGES``); the
    # ``depth_*`` knobs below the first five are DepthCrafter's, ``depth_input_size`` is Video
    # Depth Anything's.
    depth_model: str = DEFAULT_DEPTH_MODEL
    # StereoCrafter's call of DepthCrafter (reference notes §1.1).
    depth_steps: int = 8
    depth_guidance: float = 1.2
    depth_window: int = 70
    depth_overlap: int = 25
    depth_max_res: int = 1024
    noise_aug_strength: float = 0.02
    depth_decode_chunk: int = 8
    depth_input_size: int = VDA_INPUT_SIZE  # the published --input_size (518); tests use less
    # Which inpainting model runs (``catalog.INPAINTING_MODELS``, a stage of
    # ``stages.INPAINTING_STAGES``); the knobs below are StereoCrafter's (reference notes §2).
    inpainting_model: str = DEFAULT_INPAINTING_MODEL
    inpaint_steps: int = 8
    inpaint_guidance: float = 1.01
    frames_chunk: int = 23
    inpaint_overlap: int = 3
    tile_num: int = 1
    splat_batch: int = 10
    seed: int = DEFAULT_SEED
    # The reference inpaints the whole frame at the source size and takes all of it. The `fast`
    # preset caps the inpainting's long side and keeps the splat outside the (grown) holes.
    inpaint_max_res: int = 0  # 0: the source size
    holes_only: bool = False  # True: splatted pixels outside the holes, exactly
    hole_dilate_px: int = 0  # holes grown by this much before merging (source pixels)
    hole_feather_px: int = 0  # then a linear fade over this many pixels
    inpaint_multiple: int = 8  # sides of a resized working size: multiples of this (``merge.working_size``)

    def __post_init__(self) -> None:
        check_max_disp(self.max_disp)  # bounds.py: the schema and the CLI check the same
        check_seed(self.seed)
        check_tile_num(self.tile_num)
        check_depth_model(self.depth_model)
        check_inpainting_model(self.inpainting_model)
        if not VDA_PATCH <= self.depth_input_size <= VDA_INPUT_SIZE:
            raise ValueError(
                f"depth_input_size must be in [{VDA_PATCH}, {VDA_INPUT_SIZE}], not {self.depth_input_size}"
            )
        if self.inpaint_multiple not in (8, 16, 32, 64):
            raise ValueError(f"inpaint_multiple must be 8, 16, 32 or 64, not {self.inpaint_multiple}")
        if self.splat_batch < 1:
            raise ValueError(f"splat_batch must be >= 1, got {self.splat_batch}")
        if self.inpaint_max_res < 0 or (self.inpaint_max_res and self.inpaint_max_res < 64):
            raise ValueError(
                f"inpaint_max_res must be 0 (the source size) or >= 64, not {self.inpaint_max_res}"
            )
        if self.inpaint_max_res and not self.holes_only:
            raise ValueError(
                "inpaint_max_res needs holes_only: a resized inpaint is merged only into the holes"
            )
        if self.hole_dilate_px < 0 or self.hole_feather_px < 0:
            raise ValueError("hole_dilate_px and hole_feather_px must be >= 0")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> StereoConfig:
        """The preset's table (``presets.PRESETS``) over the defaults, then ``overrides``: what the
        edge (the schema, the CLI, the settings) calls once, so that this is where a preset's name
        is checked (``presets.check_preset``'s ``ValueError``)."""
        return cls(preset=name, **{**PRESETS[check_preset(name)], **overrides})


REFERENCE = StereoConfig()  # the published defaults, which the model code reads


def resolve(
    preset: str | None, settings: Settings, *, served: Sequence[str] | None = None, **knobs: Any
) -> StereoConfig:
    """The run config of one job, built once at the edge (the request schema, the CLI): the named
    preset (None: ``STEREOCRAFTER_PRESET``) with ``knobs`` (a request's seed, max_disp, tile_num)
    and the step counts of ``STEREOCRAFTER_DEPTH_STEPS``/``_INPAINT_STEPS`` and VDA's
    ``STEREOCRAFTER_DEPTH_INPUT_SIZE`` when those are set. ``served``: the presets the endpoint
    loaded (``STEREOCRAFTER_PRESETS``), which the preset must be one of (``PresetNotServedError``,
    400); an unknown preset is ``from_preset``'s ``ValueError``."""
    steps = {
        "depth_steps": settings.depth_steps,
        "inpaint_steps": settings.inpaint_steps,
        "depth_input_size": settings.depth_input_size,
    }
    name = preset or settings.preset
    config = StereoConfig.from_preset(name, **{k: v for k, v in steps.items() if v is not None}, **knobs)
    if served is not None and name not in served:  # its models were not loaded here
        raise PresetNotServedError(
            f"this endpoint serves the presets {', '.join(served)} (STEREOCRAFTER_PRESETS), not {name}"
        )
    return config
