"""``pipeline.types``: a run's hooks as one value, none of which changes the output."""

from __future__ import annotations

import dataclasses

import pytest

from stereocrafter.guard import Deadline
from stereocrafter.pipeline.types import NO_HOOKS, RunHooks, StereoResult


def test_the_hooks_are_one_frozen_value_with_the_stop_check_as_an_object() -> None:
    assert (NO_HOOKS.progress, NO_HOOKS.stop, NO_HOOKS.observer, NO_HOOKS.grid_sink) == (None,) * 4
    hooks = RunHooks(stop=Deadline(10))
    with pytest.raises(dataclasses.FrozenInstanceError):
        hooks.stop = None  # type: ignore[misc]
    assert "check" not in {f.name for f in dataclasses.fields(RunHooks)}  # no bare callable
    assert StereoResult(num_frames=3, width=8, height=6).timings == {}
