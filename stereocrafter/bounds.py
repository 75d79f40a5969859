"""Rules that more than one room enforces, declared once (no imports: anything may use them).

- ``MODES``: the stereo layouts a request, the CLI and ``stereo.compose`` know (``DEFAULT_MODE``
  when a request names none).
- ``ENCODERS``: what ``STEREOCRAFTER_ENCODER`` and the CLI's ``--encoder`` accept
  (``media.encoders`` says what each means); ``QUALITY``: the encoder's quality scale, CRF for
  libx264 and CQ for NVENC, 0-51, lower = better (``DEFAULT_QUALITY`` 18).

The request schema, the CLI and ``StereoConfig`` all check these values with the functions here, so
a value one of them accepts, the others accept too, with the same message:

- ``MAX_DISP``: the disparity of the nearest point, pixels, in [0, 100] (the reference uses 20).
- ``MAX_SEED``: seeds are in [0, 2^31 - 1], what every caller's language can carry as an int.
- ``TILE_NUMS``: the inpainting's tiles per axis, 1, 2 or 4 (the reference's choices).
- ``VDA_PATCH``, ``VDA_INPUT_SIZE``: Video Depth Anything's input side, one ViT patch (14) to the
  published 518.

- ``MAX_DEPTH_VALUE``: the bound of every raw or aligned depth value a request or a stored depth may
  carry (``depth_scale``, ``depth_shift``, ``depth_range``, a stored depth's low and high). Raw
  DepthCrafter depth lies in [0, 1]; 1e6 leaves room for any affine alignment while keeping
  ``scale * raw + shift`` far inside float32 (at most 1e12).
- ``MIN_RELATIVE_SPAN``: a depth range [low, high] normalises depth as (d - low) / (high - low) in
  float32, whose relative precision is 6e-8. A span narrower than 1e-6 of the values' magnitude
  (at least of 1) becomes zero or a handful of float32 steps: NaN, or the whole clip flattened to
  one depth. The schema refuses such a request (400); a clip whose own depth is that flat is
  treated as flat (depth 0 everywhere, as the reference's constant-depth case).
"""

from __future__ import annotations

from typing import Literal, get_args

Mode = Literal["anaglyph", "sbs", "half-sbs", "top-bottom", "anaglyph-dubois"]
MODES: tuple[str, ...] = get_args(Mode)
DEFAULT_MODE: Mode = "anaglyph"

EncoderName = Literal["auto", "libx264", "h264_nvenc", "hevc_nvenc"]
ENCODERS: tuple[str, ...] = get_args(EncoderName)
DEFAULT_QUALITY = 18
QUALITY = (0, 51)

MAX_DEPTH_VALUE = 1e6
MIN_RELATIVE_SPAN = 1e-6
DEFAULT_MAX_DISP = 20.0
MAX_DISP = 100.0
DEFAULT_SEED = 42
MAX_SEED = 2**31 - 1
TileNum = Literal[1, 2, 4]
TILE_NUMS: tuple[int, ...] = get_args(TileNum)
# Video Depth Anything's input side: at least one ViT patch, at most the published --input_size.
VDA_PATCH = 14
VDA_INPUT_SIZE = 518


def check_max_disp(value: float, name: str = "max_disp") -> float:
    """``value`` when it is in [0, ``MAX_DISP``] pixels, else ``ValueError`` naming ``name``."""
    if not 0.0 <= value <= MAX_DISP:
        raise ValueError(f"{name} must be in [0, {MAX_DISP:g}] px, got {value:g}")
    return value


def check_seed(value: int, name: str = "seed") -> int:
    """``value`` when it is an integer in [0, ``MAX_SEED``], else ``ValueError`` naming ``name``."""
    if not 0 <= value <= MAX_SEED:
        raise ValueError(f"{name} must be an integer in [0, {MAX_SEED}], got {value}")
    return value


def check_tile_num(value: int, name: str = "tile_num") -> int:
    """``value`` when it is one of ``TILE_NUMS``, else ``ValueError`` naming ``name``."""
    if value not in TILE_NUMS:
        raise ValueError(f"{name} must be one of {', '.join(map(str, TILE_NUMS))}, got {value}")
    return value


def min_span(low: float, high: float) -> float:
    """The narrowest span a range around ``low`` and ``high`` may have (``MIN_RELATIVE_SPAN``)."""
    return MIN_RELATIVE_SPAN * max(1.0, abs(low), abs(high))


def wide_enough(low: float, high: float) -> bool:
    """True when [low, high] is a range float32 normalisation can use: finite, low < high, and
    ``high - low >= min_span(low, high)``."""
    return low < high and high - low >= min_span(low, high) and abs(high - low) < float("inf")


def check_depth_range(low: float, high: float) -> None:
    """``ValueError`` naming the rule unless ``wide_enough(low, high)``."""
    if not low < high:
        raise ValueError(f"depth_range must be [low, high] with low < high, got [{low:g}, {high:g}]")
    if not wide_enough(low, high):
        raise ValueError(
            f"depth_range [{low:.9g}, {high:.9g}] is too narrow: high - low must be at least "
            f"{MIN_RELATIVE_SPAN:g} x max(1, |low|, |high|) = {min_span(low, high):.3g}, or float32 "
            "normalisation cannot tell the depths apart"
        )


def check_mode(mode: str) -> Mode:
    """Return ``mode`` if it names a layout, else raise ``ValueError`` listing the known ones."""
    if mode not in MODES:
        raise ValueError(f"unknown stereo mode {mode!r}; expected one of {', '.join(MODES)}")
    return mode  # type: ignore[return-value]


def check_encoder(value: str, name: str = "encoder") -> str:
    if value not in ENCODERS:
        raise ValueError(f"{name} must be one of {', '.join(ENCODERS)}, got {value!r}")
    return value
