"""``errors``: every error type carries its own code and HTTP status, one meaning per code."""

from __future__ import annotations

import inspect

from stereocrafter import errors
from stereocrafter.errors import BadRequestError, PresetNotServedError, StereoCrafterError


def test_codes_are_unique_and_statuses_are_http_errors() -> None:
    kinds = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, StereoCrafterError)]
    assert len(kinds) > 15
    codes = [c.code for c in kinds]
    assert len(codes) == len(set(codes)), codes
    assert all(400 <= c.status <= 599 for c in kinds)


def test_a_preset_that_is_not_served_is_a_bad_request() -> None:
    err = PresetNotServedError("this endpoint serves turbo")
    assert isinstance(err, BadRequestError) and (err.status, err.code) == (400, "preset_not_served")
    assert err.message == "this endpoint serves turbo"
