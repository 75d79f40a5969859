"""Every request the schema accepts can be normalised: the depth fields of the stereo task
(``depth_scale``, ``depth_shift``, ``depth_range``, ``max_disp``) run through the pipeline's own
normalisation and disparity steps on a tiny tensor without NaN, inf or an exception."""

from __future__ import annotations

import json

import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stereocrafter.bounds import MAX_DEPTH_VALUE
from stereocrafter.errors import BadRequestError
from stereocrafter.serving.schemas import parse_invocation
from stereocrafter.stereo.depthmap import AlignedDepth, common_scale, normalise, resize_depth
from stereocrafter.stereo.splatting import disparity_from_depth, forward_splat

BASE = {"s3_input_uri": "s3://inbox/a.mp4", "s3_output_uri": "s3://outbox/a.mp4"}

# Any float JSON can carry, weighted towards the edges: tiny, huge, negative, exact bounds.
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-2 * MAX_DEPTH_VALUE, max_value=2 * MAX_DEPTH_VALUE),
    st.sampled_from([0.0, 1e-300, 5e-324, 1e-30, 1e-7, 1e-6, 1.0, MAX_DEPTH_VALUE, -MAX_DEPTH_VALUE]),
)
# A range: a low and a span from nothing to everything.
spans = st.one_of(st.floats(min_value=0, max_value=1e-3), st.floats(min_value=0, max_value=3e6),
                  st.sampled_from([1e-300, 1e-30, 1e-12, 1e-7, 1e-6, 2e-6]))  # fmt: skip
ranges = st.builds(lambda low, span: [low, low + span], numbers, spans)
raw_depths = st.lists(
    st.floats(min_value=-MAX_DEPTH_VALUE, max_value=MAX_DEPTH_VALUE, width=32), min_size=6, max_size=6
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    scale=st.one_of(st.none(), numbers),
    shift=st.one_of(st.none(), numbers),
    depth_range=st.one_of(st.none(), ranges),
    max_disp=st.one_of(st.just(20.0), st.floats(min_value=0, max_value=100)),
    raw=raw_depths,
)
@example(scale=None, shift=None, depth_range=[0.0, 1e-30], max_disp=20.0, raw=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
@example(scale=1e-300, shift=None, depth_range=None, max_disp=20.0, raw=[0.0, 0.1, 0.2, 0.3, 0.4, 0.5])
@example(scale=1e6, shift=-1e6, depth_range=[-1e6, 1e6], max_disp=100.0, raw=[1e6] * 6)
def test_every_accepted_request_normalises_without_nan(
    scale: float | None, shift: float | None, depth_range: list[float] | None, max_disp: float,
    raw: list[float],
) -> None:  # fmt: skip
    fields = {"depth_scale": scale, "depth_shift": shift, "depth_range": depth_range, "max_disp": max_disp}
    body = json.dumps({**BASE, **{k: v for k, v in fields.items() if v is not None}})
    try:
        request = parse_invocation(body.encode())
    except BadRequestError:
        return  # refused with a 400: nothing to run
    stored = torch.tensor(raw, dtype=torch.float32).reshape(2, 1, 1, 3)  # (T, 1, h, w) raw depth
    aligned = AlignedDepth.from_fields(
        stored,
        depth_scale=request.depth_scale,
        depth_shift=request.depth_shift,
        depth_range=request.depth_range,
    )
    mapped, low, high = common_scale(stored, aligned)
    depth = resize_depth(normalise(mapped, low, high), (2, 5)).clamp(0, 1)
    disparity = disparity_from_depth(depth, request.max_disp)
    assert torch.isfinite(depth).all() and torch.isfinite(disparity).all(), (low, high, depth)
    warped, occlusion = forward_splat(torch.rand(2, 3, 2, 5), disparity)
    assert torch.isfinite(warped).all() and torch.isfinite(occlusion).all()
