"""What one run of ``StereoPipeline`` takes and gives, as data: its knobs (``StereoConfig``, a preset's
table over the reference's defaults), its hooks (``RunHooks``: progress, stop check, observer, grid
sink), a long video's depth (``AlignedDepth``), the frame and sink types, and ``StereoResult``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from stereocrafter.bounds import DEFAULT_MAX_DISP, DEFAULT_SEED, check_max_disp, check_seed, check_tile_num
from stereocrafter.catalog import DEFAULT_DEPTH_MODEL, check_depth_model
from stereocrafter.models import depth as depth_stage
from stereocrafter.models import inpainting as inpainting_stage
from stereocrafter.models import vda, vda_depth
from stereocrafter.presets import PRESETS, check_preset

FrameChunks = Iterator[np.ndarray]  # (t, H, W, 3) uint8 RGB chunks, in order


HostChunks = Iterator[np.ndarray] | Iterator[torch.Tensor]  # the same, as numpy or torch


OpenFrames = Callable[[], FrameChunks]


Sink = Callable[[np.ndarray], None]  # receives (t, H_out, W_out, 3) uint8


Progress = Callable[[str, int, int], None]  # (stage, done, total)


class Observer(Protocol):
    """Sees what a run holds without changing it (``report.QualityReport`` is one): the clip's
    facts once, before the stereo pass, then every composed chunk's full-size tensors."""

    def on_start(self, *, num_frames: int, width: int, height: int, config: StereoConfig,
                 depth_range: tuple[float, float], seams: list[int]) -> None: ...  # fmt: skip

    def on_frames(self, start: int, left: torch.Tensor, depth: torch.Tensor, occlusion: torch.Tensor,
                  right: torch.Tensor) -> None: ...  # fmt: skip


@dataclass(frozen=True)
class StereoConfig:
    """Every parameter of the two stages; defaults are the reference's."""

    max_disp: float = DEFAULT_MAX_DISP
    # Which depth model runs (``catalog.DEPTH_MODELS``); the ``depth_*`` knobs below the first
    # five are DepthCrafter's, ``depth_input_size`` is Video Depth Anything's (``depth_stages``).
    depth_model: str = DEFAULT_DEPTH_MODEL
    depth_steps: int = depth_stage.DEFAULT_STEPS
    depth_guidance: float = depth_stage.DEFAULT_GUIDANCE
    depth_window: int = depth_stage.DEFAULT_WINDOW
    depth_overlap: int = depth_stage.DEFAULT_OVERLAP
    depth_max_res: int = depth_stage.DEFAULT_MAX_RES
    noise_aug_strength: float = depth_stage.DEFAULT_NOISE_AUG
    depth_decode_chunk: int = depth_stage.DEFAULT_DECODE_CHUNK
    depth_input_size: int = vda_depth.INPUT_SIZE  # the published --input_size (518); tests use less
    inpaint_steps: int = inpainting_stage.DEFAULT_STEPS
    inpaint_guidance: float = inpainting_stage.DEFAULT_GUIDANCE
    frames_chunk: int = inpainting_stage.DEFAULT_FRAMES_CHUNK
    inpaint_overlap: int = inpainting_stage.DEFAULT_OVERLAP
    tile_num: int = inpainting_stage.DEFAULT_TILE_NUM
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
        if not vda.PATCH <= self.depth_input_size <= vda_depth.INPUT_SIZE:
            raise ValueError(
                f"depth_input_size must be in [{vda.PATCH}, {vda_depth.INPUT_SIZE}], "
                f"not {self.depth_input_size}"
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
        """The preset's table (``presets.PRESETS``) over the defaults, then ``overrides``."""
        return cls(**{**PRESETS[check_preset(name)], **overrides})


@dataclass(frozen=True)
class RunHooks:
    """Everything a caller hooks into one run, as one value (diffusers' ``callback_on_step_end``
    is the model): none of them changes the output.

    - ``progress(stage, done, total)``: frames finished per stage ("depth", "inpainting").
    - ``check()``: called after every UNet evaluation, before every VAE decode and between stages;
      whatever it raises (``guard.Deadline``'s 504, SIGTERM's 503) stops the run there.
    - ``observer``: sees the clip's facts and every composed chunk (``report.QualityReport``).
    - ``grid_sink``: receives the reference's 2x2 debug grid of every chunk, (t, 2H, 2W, 3) uint8.
    """

    progress: Progress | None = None
    check: Callable[[], None] | None = None
    observer: Observer | None = None
    grid_sink: Sink | None = None


NO_HOOKS = RunHooks()


@dataclass(frozen=True)
class AlignedDepth:
    """The depth a run uses on a long video's common scale (``stereocrafter.long.align``), one value
    instead of four arguments.

    - ``raw``: the clip's raw depth stored by an earlier ``depth_pass``, (T, 1, h, w) float32 (any
      h x w: it is resized to the source size); None: the run's own depth pass makes it.
    - ``scale``, ``shift``: aligned = scale * raw + shift, a reference segment's scale.
    - ``range``: (low, high) normalising the aligned depth instead of the clip's own min and max
      (values outside it are clamped); it must be wide enough for float32 (``bounds``).

    ``AlignedDepth()`` is the reference's run: the clip's own depth, normalised by its own range.
    """

    raw: torch.Tensor | None = None
    scale: float = 1.0
    shift: float = 0.0
    range: tuple[float, float] | None = None

    @property
    def mapped(self) -> bool:
        return (self.scale, self.shift) != (1.0, 0.0)

    @classmethod
    def from_fields(
        cls,
        raw: torch.Tensor | None = None,
        *,
        depth_scale: float | None = None,
        depth_shift: float | None = None,
        depth_range: Sequence[float] | None = None,
    ) -> AlignedDepth:
        """From a request's fields (or a segment's options, which carry the same names): an
        absent scale is 1, an absent shift 0, an absent range the clip's own."""
        return cls(
            raw,
            1.0 if depth_scale is None else float(depth_scale),
            0.0 if depth_shift is None else float(depth_shift),
            None if depth_range is None else (float(depth_range[0]), float(depth_range[1])),
        )


@dataclass
class StereoResult:
    num_frames: int
    width: int  # of the composed output
    height: int
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
