"""Request and response bodies of ``POST /invocations`` (pydantic, bounded; no torch here).

URIs are parsed exactly once, into ``S3Location(bucket, key)``; every comparison and every S3 call
uses that parsed pair, never the raw string (a raw ``"s3://inbox/a.mp4\\n"`` once compared unequal to
``"s3://inbox/a.mp4"`` while naming the same key, and the input was overwritten). ``parse_invocation``
turns the raw body into a request or a ``BadRequestError`` whose message is bounded (``echo``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from stereocrafter.bounds import (
    DEFAULT_MAX_DISP,
    DEFAULT_MODE,
    DEFAULT_SEED,
    MAX_DEPTH_VALUE,
    MAX_DISP,
    MAX_SEED,
    Mode,
    TileNum,
    check_depth_range,
)
from stereocrafter.config import StereoConfig, resolve
from stereocrafter.echo import bounded, echo
from stereocrafter.errors import BadRequestError
from stereocrafter.locations import S3Location
from stereocrafter.long.tasks import check_task_fields

if TYPE_CHECKING:
    from stereocrafter.settings import Settings

StereoMode = Mode  # bounds.py: the CLI and stereo.compose know the same layouts

MAX_ERRORS_LISTED = 5
DepthValue = Annotated[float, Field(ge=-MAX_DEPTH_VALUE, le=MAX_DEPTH_VALUE, allow_inf_nan=False)]


# A request field holding a parsed location; it serialises back to its canonical URI.
S3Uri = Annotated[S3Location, BeforeValidator(S3Location.parse), PlainSerializer(str, return_type=str)]


class InvocationRequest(BaseModel):
    """The body the video-worker (or SageMaker) posts. The URIs are ``S3Location``s once parsed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Literal["stereo", "depth"] = Field(
        default="stereo",
        description="stereo: the conversion (default); depth: stage 1 only, the raw depth to "
        "depth_output_uri and its summary in the answer (long videos, see stereocrafter.long.align)",
    )
    s3_input_uri: S3Uri = Field(description="s3://bucket/key of the 2D segment")
    s3_output_uri: S3Uri | None = Field(
        default=None, description="s3://bucket/key where the stereo video is written (stereo task)"
    )
    depth_output_uri: S3Uri | None = Field(
        default=None, description="where the depth task writes the raw depth (Matroska, FFV1 16-bit)"
    )
    depth_uri: S3Uri | None = Field(
        default=None, description="a stored depth of this segment (from a depth task): no depth pass"
    )
    depth_scale: float | None = Field(
        default=None, gt=0.0, le=MAX_DEPTH_VALUE, allow_inf_nan=False,
        description="aligned depth = depth_scale * raw + depth_shift",
    )  # fmt: skip
    depth_shift: float | None = Field(
        default=None, ge=-MAX_DEPTH_VALUE, le=MAX_DEPTH_VALUE, allow_inf_nan=False
    )
    depth_range: tuple[DepthValue, DepthValue] | None = Field(
        default=None, description="[low, high] normalising the aligned depth (default: its min and max)"
    )
    mode: StereoMode = DEFAULT_MODE
    # The bounds are bounds.py's, which the CLI and StereoConfig check too.
    max_disp: float = Field(
        default=DEFAULT_MAX_DISP, ge=0.0, le=MAX_DISP, description="disparity of the nearest point, px"
    )
    seed: int = Field(default=DEFAULT_SEED, ge=0, le=MAX_SEED)
    tile_num: TileNum = Field(default=1, description="inpainting tiles per axis")
    preset: str | None = Field(
        default=None,
        description=(
            "conversion preset (reference | fast | turbo, of those the endpoint serves: "
            "STEREOCRAFTER_PRESETS); default: the service's STEREOCRAFTER_PRESET"
        ),
    )
    report: bool = Field(
        default=True,
        description="write <output>.report.json and <output>.report.png beside the video",
    )
    deadline_s: float | None = Field(
        default=None, gt=0, le=86400, allow_inf_nan=False,
        description="stop the job (504) this many seconds after the request arrived, the wait in the "
        "queue included; the service's STEREOCRAFTER_JOB_TIMEOUT_S (3500 s) applies when it is shorter",
    )  # fmt: skip
    overwrite: bool = Field(
        default=True,
        description="false: refuse (409) when an object already exists at s3_output_uri, and write "
        "it only if none has appeared meanwhile (If-None-Match: *)",
    )
    reuse: bool = Field(
        default=False,
        description="true: when the output exists as its record beside it says and was made from "
        "the same input, config, weights and encoder (s3_output_uri + '.record.json'), answer with the "
        "recorded answer (reused: true) instead of doing the work again (long videos' reruns)",
    )

    _config: StereoConfig | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> InvocationRequest:
        check_task_fields(self.task, self.model_fields_set)  # long.tasks: the one table of fields
        if self.task == "depth" and self.depth_output_uri is None:
            raise ValueError("the depth task needs depth_output_uri")
        if self.task == "stereo" and self.s3_output_uri is None:
            raise ValueError("s3_output_uri is required")
        if self.depth_range is not None:
            check_depth_range(*self.depth_range)  # a span float32 can normalise (bounds.py)
        # The parsed (bucket, key) pairs: no output may name the input or a stored depth in use.
        for name in ("s3_output_uri", "depth_output_uri"):
            if getattr(self, name) is not None and getattr(self, name) == self.s3_input_uri:
                raise ValueError(f"{name} names the input object (it would be overwritten)")
        if self.depth_uri is not None and self.depth_uri in (self.s3_input_uri, self.s3_output_uri):
            raise ValueError("depth_uri names the input or the output object")
        settings = (info.context or {}).get("settings")
        if settings is not None:  # the edge: the run config, resolved once (``config.resolve``)
            knobs: dict[str, Any] = {"seed": self.seed}
            if self.task == "stereo":
                knobs.update(max_disp=self.max_disp, tile_num=self.tile_num)
            self._config = resolve(self.preset, settings, served=settings.presets, **knobs)
        return self

    @property
    def config(self) -> StereoConfig:
        """The run config resolved when the body was parsed with the service's settings
        (``parse_invocation``): the preset (or ``STEREOCRAFTER_PRESET``) with this request's knobs."""
        if self._config is None:
            raise RuntimeError("the request was parsed without settings: its run config is not resolved")
        return self._config

    @property
    def output(self) -> S3Location:
        """Where this task writes: the stereo video, or the depth."""
        target = self.depth_output_uri if self.task == "depth" else self.s3_output_uri
        assert target is not None  # validated
        return target


class Padding(BaseModel):
    right: int  # columns added on the right of the stored frame
    bottom: int  # rows added at the bottom
    reason: str


class InvocationResponse(BaseModel):
    s3_output_uri: str
    mode: StereoMode
    preset: str
    frames: int
    fps: str  # exact rational, e.g. "30000/1001"
    width: int  # of the stored video, padding included
    height: int
    padded: Padding | None = Field(
        default=None, description="set when the stored frame is larger than the stereo picture"
    )
    source_width: int
    source_height: int
    has_audio: bool
    timings: dict[str, float]
    request_id: str
    started_at: float  # epoch seconds, when the job got the GPU (after any wait in the queue)
    finished_at: float
    gpu_seconds: float = Field(default=0.0, description="wall seconds the job held its slot (its GPU)")
    cost: float | None = Field(
        default=None, description="its share of STEREOCRAFTER_INSTANCE_HOUR_PRICE (null: no price set)"
    )
    tiny_weights: bool = Field(description="true when the service runs on random test weights")
    encoder: dict[str, Any] = Field(
        description="the video encoder that wrote the output: codec, preset, crf (libx264) or cq (NVENC), "
        "requested (auto or the codec) and, when auto fell back to libx264, why (fallback)"
    )
    reused: bool = Field(default=False, description="true: the recorded answer of an output made before")
    made_gpu_seconds: float | None = Field(
        default=None, description="reused: the slot seconds the output took when it was made (its record's)"
    )
    made_cost: float | None = Field(default=None, description="reused: its cost when it was made")
    stereo_tag: str | None = Field(
        default=None,
        description="the stereo layout written into the container (st3d in MP4/MOV, StereoMode in "
        "Matroska), e.g. 'st3d left_right'; null for an anaglyph (one picture)",
    )
    slot: int | None = Field(default=None, description="the conversion slot (one per GPU) that ran the job")
    device: str | None = Field(default=None, description="the slot's device, e.g. cuda:3")
    report: dict[str, Any] | None = Field(default=None, description="the report's clip-level figures")
    report_uris: dict[str, str] | None = Field(default=None, description="json and png, once uploaded")
    report_error: str | None = Field(default=None, description="why no report was written, if so")


class DepthResponse(BaseModel):
    """The depth task's answer: where the depth is, and what the alignment of segments needs."""

    task: Literal["depth"] = "depth"
    depth_output_uri: str
    preset: str
    frames: int
    fps: str
    source_width: int
    source_height: int
    depth_width: int  # of the stored depth frames (the depth stage's processing size)
    depth_height: int
    depth_bytes: int  # size of the stored object
    stats: dict[str, float] = Field(description="raw depth: min, max, p1, p99")
    thumbnails: dict[str, Any] = Field(
        description="depth_first/depth_last (raw depth, long side 64), colour_first/colour_last "
        "(uint8 RGB, long side 32) of the first and last frames"
    )
    timings: dict[str, float]
    request_id: str
    started_at: float
    finished_at: float
    gpu_seconds: float = 0.0
    cost: float | None = None
    tiny_weights: bool
    reused: bool = False  # the recorded answer of a stored depth made before (``reuse``)
    made_gpu_seconds: float | None = None  # reused: what making it held, and cost, then
    made_cost: float | None = None
    slot: int | None = None
    device: str | None = None


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
    gpu_seconds: float | None = None  # a job that failed after taking its slot: what it held
    cost: float | None = None


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise BadRequestError(f"the field {echo(key)} appears twice in one JSON object")
        result[key] = value
    return result


def _loc_part(part: str | int) -> str:
    """One step of an error's location; a field name the caller made up is echoed, bounded."""
    if isinstance(part, int) or (part.isidentifier() and part.isascii() and len(part) <= 60):
        return str(part)
    return echo(part, 60)


def _validation_message(err: ValidationError) -> str:
    """pydantic's errors as one bounded line: where and what, caller values only through ``echo``."""
    items = err.errors(include_url=False, include_input=False, include_context=False)
    parts = []
    for item in items[:MAX_ERRORS_LISTED]:
        where = ".".join(_loc_part(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where or 'body'}: {message}")
    if len(items) > MAX_ERRORS_LISTED:
        parts.append(f"and {len(items) - MAX_ERRORS_LISTED} more")
    return bounded("; ".join(parts))


def parse_invocation(body: bytes, settings: Settings | None = None) -> InvocationRequest:
    """The raw ``/invocations`` body -> ``InvocationRequest``; every failure is a ``BadRequestError``
    (a preset this endpoint does not serve: its ``PresetNotServedError``). With ``settings`` the
    request's run config is resolved too (``InvocationRequest.config``).

    Malformed JSON, nesting too deep for the parser, numbers out of Python's range, duplicate
    keys, a body that is not an object, unknown fields and bad values all give 400 with a message
    within ``MESSAGE_LIMIT`` characters.
    """
    try:
        data = json.loads(body or b"null", object_pairs_hook=_no_duplicate_keys)
    except json.JSONDecodeError as err:
        raise BadRequestError(f"the body is not valid JSON ({err.msg} at position {err.pos})") from None
    except UnicodeDecodeError:
        raise BadRequestError("the body is not UTF-8 text") from None
    except RecursionError:
        raise BadRequestError("the body's JSON is nested too deeply") from None
    except ValueError as err:  # e.g. an integer literal over Python's 4300-digit limit
        raise BadRequestError(bounded(f"the body's JSON holds a value that cannot be read: {err}")) from None
    if not isinstance(data, dict):
        raise BadRequestError("the body must be a JSON object with s3_input_uri and s3_output_uri")
    try:
        return InvocationRequest.model_validate(data, context={"settings": settings})
    except ValidationError as err:
        raise BadRequestError(_validation_message(err)) from None
    except RecursionError:  # a deeply nested value in a field that takes a string
        raise BadRequestError("a field's value is nested too deeply") from None
