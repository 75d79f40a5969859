"""``long.tasks``: the one table of which fields each task takes, shared by the schema, the segment
orchestrator and the client."""

from __future__ import annotations

import pytest

from stereocrafter.client import depth_body, request_body
from stereocrafter.long.tasks import DEPTH_TASK_OPTIONS, TASK_FIELDS, check_task_fields, foreign_fields
from stereocrafter.serving.schemas import InvocationRequest


def test_each_field_belongs_to_one_task_or_both() -> None:
    stereo, depth = set(TASK_FIELDS["stereo"]), set(TASK_FIELDS["depth"])
    assert not stereo & depth and set(DEPTH_TASK_OPTIONS) <= {"preset", "seed"}
    assert foreign_fields("depth", ["mode", "seed", "depth_range"]) == ["mode", "depth_range"]
    with pytest.raises(ValueError, match="depth_output_uri does not apply to the stereo task"):
        check_task_fields("stereo", ["depth_output_uri"])


def test_the_table_covers_every_field_of_the_request_schema() -> None:
    from stereocrafter.long.tasks import COMMON

    assert set(InvocationRequest.model_fields) == set(COMMON) | set(TASK_FIELDS["stereo"]) | set(
        TASK_FIELDS["depth"]
    )


def test_the_client_refuses_another_task_s_field_before_sending() -> None:
    assert request_body("s3://b/in.mp4", "s3://b/out.mp4", seed=3)["seed"] == 3
    with pytest.raises(ValueError, match="mode does not apply to the depth task"):
        depth_body("s3://b/in.mp4", "s3://b/d.mkv", mode="sbs")
