"""``models.thirdparty``: the model libraries' known noise is dropped, everything else kept."""

from __future__ import annotations

import pytest


def test_known_library_messages_are_dropped_and_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from stereocrafter.models.thirdparty import quiet_known_messages

    quiet_known_messages()
    diffusers_log = logging.getLogger("diffusers.models.modeling_utils")
    transformers_log = logging.getLogger("transformers.utils.import_utils")
    with caplog.at_level(logging.WARNING):
        diffusers_log.warning("There are modules in X that should be kept in float32: []. Casting ...")
        transformers_log.warning(
            "`CLIPImageProcessor` requires torchvision (not installed); falling back to ..."
        )
        diffusers_log.warning("There are modules in X that should be kept in float32: ['norm']. Casting ...")
        transformers_log.warning("something else entirely")
    assert [r.getMessage()[:30] for r in caplog.records] == [
        "There are modules in X that sh",
        "something else entirely",
    ]
