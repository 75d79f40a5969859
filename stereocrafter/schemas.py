"""Request and response bodies of ``POST /invocations`` (pydantic, bounded; no torch here)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")

StereoMode = Literal["anaglyph", "sbs", "half-sbs", "top-bottom", "anaglyph-dubois"]


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); ``ValueError`` for anything else."""
    match = S3_URI.match(uri)
    if match is None:
        raise ValueError(f"not an s3://bucket/key URI: {uri!r}")
    return match["bucket"], match["key"]


class InvocationRequest(BaseModel):
    """The body the video-worker (or SageMaker) posts, as is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    s3_input_uri: str = Field(description="s3://bucket/key of the 2D segment")
    s3_output_uri: str = Field(description="s3://bucket/key where the stereo video is written")
    mode: StereoMode = "anaglyph"
    max_disp: float = Field(default=20.0, ge=0.0, le=100.0, description="disparity of the nearest point, px")
    seed: int = Field(default=42, ge=0, le=2**31 - 1)
    tile_num: Literal[1, 2, 4] = Field(default=1, description="inpainting tiles per axis")

    @field_validator("s3_input_uri", "s3_output_uri")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        split_s3_uri(value)
        return value

    @model_validator(mode="after")
    def _distinct(self) -> InvocationRequest:
        if self.s3_input_uri == self.s3_output_uri:
            raise ValueError("s3_output_uri must differ from s3_input_uri (the input would be overwritten)")
        return self


class InvocationResponse(BaseModel):
    s3_output_uri: str
    mode: StereoMode
    frames: int
    fps: str  # exact rational, e.g. "30000/1001"
    width: int
    height: int
    has_audio: bool
    timings: dict[str, float]
    request_id: str
    started_at: float  # epoch seconds, when the job got the GPU (after any wait in the queue)
    finished_at: float
    tiny_weights: bool = Field(description="true when the service runs on random test weights")


class ErrorBody(BaseModel):
    error: str
    message: str
    request_id: str
