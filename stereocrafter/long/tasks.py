"""Which request fields each task takes: one table for the request schema (which refuses a field of
the other task), the segment orchestrator (which sends a depth task only the fields it takes) and
the client (which refuses them before sending). No imports beyond the standard library: the
video-worker's client runs it.

- ``stereo``: the conversion; ``depth``: stage 1 alone, the raw depth stored (long videos).
- Both take ``COMMON``: the input, the preset and seed (the depth a preset's model makes with its
  seed), the deadline, ``overwrite`` and ``reuse`` (give the recorded answer of an output made
  from the same request: ``jobs.records``).
- ``ALIGNED``: what a long video's alignment adds to a segment's stereo task
  (``long.align.Alignment.request_fields``), with the stored depth it applies to.
"""

from __future__ import annotations

from collections.abc import Iterable

COMMON: tuple[str, ...] = ("task", "s3_input_uri", "preset", "seed", "deadline_s", "overwrite", "reuse")
ALIGNED: tuple[str, ...] = ("depth_uri", "depth_scale", "depth_shift", "depth_range")
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    "stereo": ("s3_output_uri", "mode", "max_disp", "tile_num", "report", *ALIGNED),
    "depth": ("depth_output_uri",),
}
# Of a segment conversion's options, those the depth task takes too (the rest are the stereo task's).
DEPTH_TASK_OPTIONS: tuple[str, ...] = ("preset", "seed")


def foreign_fields(task: str, given: Iterable[str]) -> list[str]:
    """The fields of ``given`` that only the other task takes, in the table's order."""
    others = [fields for name, fields in TASK_FIELDS.items() if name != task]
    present = set(given)
    return [name for fields in others for name in fields if name in present]


def check_task_fields(task: str, given: Iterable[str]) -> None:
    """``ValueError`` naming the fields of ``given`` that do not apply to ``task``."""
    wrong = foreign_fields(task, given)
    if wrong:
        raise ValueError(f"{', '.join(wrong)} does not apply to the {task} task")
