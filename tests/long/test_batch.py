"""``long.batch``: manifests in parts, the answers read back, and the two passes with the alignment
between them, against an engine of known answers (the real service behind the local driver and
moto's SageMaker: tests/service/test_long_videos.py, tests/containerize/test_batch.py)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from stereocrafter.long.batch import answers, convert_segments_batch, manifest
from tests.long.test_segments import _summary


def test_a_manifest_keeps_the_order_in_at_most_files_parts() -> None:
    requests = [{"s3_input_uri": f"s3://b/{i}.mp4", "n": i} for i in range(7)]
    parts = manifest(requests, files=3)
    assert len(parts) == 3 and [p.count(b"\n") for p in parts] == [3, 3, 1]
    assert [json.loads(line)["n"] for p in parts for line in p.splitlines()] == list(range(7))
    assert len(manifest(requests, files=50)) == 7 and manifest([], files=3) == []


def test_an_out_object_is_used_only_when_it_answers_every_line() -> None:
    assert answers(b'{"a": 1}\n{"a": 2}\n', 2) == [{"a": 1}, {"a": 2}]
    assert answers(b'{"a": 1}\n', 2) is None and answers(None, 1) is None
    assert answers(b"not json\n", 1) is None and answers(b"[1]\n", 1) is None


class Engine:
    """Answers each line as the service would (depth: a summary of a known scene at a scale per
    segment; stereo: its fields echoed), except the parts it is told to lose."""

    def __init__(self, files: int, lose: set[tuple[str, int]] | None = None) -> None:
        self.files, self.lose = files, lose or set()
        self.truth = np.random.default_rng(0).uniform(0.2, 0.8, (36, 64))
        self.jobs: list[tuple[str, list[bytes]]] = []

    def transform(self, name: str, parts: list[bytes]) -> list[list[dict[str, Any]] | None]:
        self.jobs.append((name, parts))
        out: list[list[dict[str, Any]] | None] = []
        for i, part in enumerate(parts):
            lines = [json.loads(line) for line in part.splitlines()]
            if (name, i) in self.lose:
                out.append(None)
            elif name.endswith("-depth"):
                out.append([_summary((1.0 + 0.5 * int(r["s3_input_uri"][-5])) * self.truth) for r in lines])
            else:
                out.append([{"frames": 8, "fps": "24", **r} for r in lines])
        return out


def test_two_jobs_with_the_alignment_between_them() -> None:
    pairs = [(f"s3://b/in{i}.mp4", f"s3://b/out{i}.mp4") for i in range(5)]
    engine = Engine(files=2)
    result = convert_segments_batch(pairs, engine, name="film", mode="sbs", preset="fast", max_disp=30.0)
    assert not result.failed and [name for name, _ in engine.jobs] == ["film-depth", "film-stereo"]
    depth_lines = [json.loads(x) for x in engine.jobs[0][1][0].splitlines()]
    assert depth_lines[0] == {"task": "depth", "s3_input_uri": "s3://b/in0.mp4", "preset": "fast",
                              "depth_output_uri": "s3://b/out0.mp4.depth.mkv", "reuse": True}  # fmt: skip
    for i, s in enumerate(result.segments):
        assert s.result is not None and s.result["depth_uri"] == f"s3://b/out{i}.mp4.depth.mkv"
        assert {k: s.result[k] for k in ("depth_scale", "depth_shift", "depth_range")} == (
            result.alignment.request_fields(i)
        )
        assert s.result["max_disp"] == 30.0 and s.result["mode"] == "sbs" and "task" not in s.result
    # one scene at five scales: the maps undo them, so every segment's range is the same
    assert len({tuple(result.alignment.request_fields(i)["depth_range"]) for i in range(5)}) == 1


def test_a_lost_part_fails_its_segments_and_the_others_go_on() -> None:
    pairs = [(f"s3://b/in{i}.mp4", f"s3://b/out{i}.mp4") for i in range(4)]
    result = convert_segments_batch(pairs, Engine(files=2, lose={("f-depth", 1)}), name="f")
    assert result.failed == [2, 3] and all(result.segments[i].stage == "depth" for i in (2, 3))
    # SageMaker's rule, said as it is: one failed record loses its whole part's answers
    assert all("f-depth wrote no answers for its part 1 (lines 2-3 of its manifest)" in (s.error or "")
               and "one failed record loses the answers of its whole part" in (s.error or "")
               for s in result.segments[2:])  # fmt: skip
    assert result.segments[0].ok and result.alignment.segments[2] is None
    stereo = convert_segments_batch(pairs, Engine(files=4, lose={("f-stereo", 0)}), name="f", reuse=False)
    assert (
        stereo.failed == [0]
        and stereo.segments[0].stage == "stereo"
        and "reuse" not in stereo.segments[1].result
    )  # type: ignore[operator]
