"""``stages.base``: every registered stage implements its kind's interface."""

from __future__ import annotations

import inspect

from stereocrafter.catalog import MODELS
from stereocrafter.stages.base import DepthStage, InpaintingStage, WarmupCall
from stereocrafter.stages.registry import DEPTH_STAGES, INPAINTING_STAGES, check_registries


def _members(protocol: type) -> set[str]:
    names: set[str] = set()
    for klass in protocol.__mro__:
        if klass is object or not getattr(klass, "_is_protocol", False):
            continue
        names |= {n for n in vars(klass) if not n.startswith("_")} | set(
            getattr(klass, "__annotations__", {})
        )
    return names - {"pipeline"}  # set by each instance


def test_every_stage_has_every_member_of_its_interface() -> None:
    check_registries()
    for table, protocol in ((DEPTH_STAGES, DepthStage), (INPAINTING_STAGES, InpaintingStage)):
        for name, stage in table.items():
            assert stage.name == name and name in MODELS
            missing = {m for m in _members(protocol) if not hasattr(stage, m)}
            assert not missing, (name, missing)
            assert inspect.ismethod(stage.load) or callable(stage.load)


def test_a_warm_up_call_is_a_value() -> None:
    assert WarmupCall("vda-small", 32, 1, (518, 924)) == WarmupCall("vda-small", 32, 1, (518, 924))
