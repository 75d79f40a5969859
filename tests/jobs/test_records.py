"""``jobs.records``: what an output was made from, and when its recorded answer may be given again."""

from __future__ import annotations

import json
import os
from pathlib import Path

from stereocrafter.config import StereoConfig
from stereocrafter.jobs.context import Encoding, Job
from stereocrafter.jobs.records import read_local, recipe, record_location, reusable, write_local
from stereocrafter.media.encoders import Encoder


def _job(**config: object) -> Job:
    return Job(config=StereoConfig.from_preset("fast", **config))  # type: ignore[arg-type]


def test_a_depth_recipe_holds_only_what_stage_1_reads() -> None:
    inputs = {"segment": {"uri": "s3://b/in.mp4", "size": 10, "etag": '"e"'}}
    depth = recipe(_job(), "depth", inputs)
    assert recipe(_job(max_disp=40.0), "depth", inputs) == depth  # a stereo knob keeps the depth
    assert (
        recipe(_job(seed=7), "depth", inputs) != depth
        and recipe(_job(depth_steps=3), "depth", inputs) != depth
    )
    assert "max_disp" not in depth["config"] and "encoder" not in depth
    other = {"segment": {**inputs["segment"], "etag": '"f"'}}  # the input's bytes changed
    assert recipe(_job(), "depth", other) != depth


def test_a_stereo_recipe_holds_the_mode_the_map_and_the_encoder() -> None:
    inputs = {"segment": {"uri": "s3://b/in.mp4", "size": 10, "etag": '"e"'}}
    made = recipe(_job(), "stereo", inputs, mode="sbs", depth_range=(0.1, 0.9))
    assert made["depth_range"] == [0.1, 0.9]  # as JSON gives it back: comparable with a stored record
    assert made["encoder"] == {"codec": "libx264", "preset": "veryfast", "crf": 18}
    assert made != recipe(_job(), "stereo", inputs, mode="top-bottom", depth_range=(0.1, 0.9))
    assert made != recipe(_job(max_disp=40.0), "stereo", inputs, mode="sbs", depth_range=(0.1, 0.9))
    nvenc = Job(config=StereoConfig.from_preset("fast"), encoding=Encoding(Encoder(codec="h264_nvenc")))
    assert made != recipe(nvenc, "stereo", inputs, mode="sbs", depth_range=(0.1, 0.9))
    tiny = Job(config=StereoConfig.from_preset("fast"), tiny=True)
    assert made != recipe(tiny, "stereo", inputs, mode="sbs", depth_range=(0.1, 0.9))


def test_a_local_record_is_reused_only_for_the_output_it_describes(tmp_path: Path) -> None:
    output = tmp_path / "segment-0000.mp4"
    output.write_bytes(b"video")
    made = recipe(_job(), "stereo", {"segment": {"path": "x"}}, mode="sbs")
    write_local(output, made, {"frames": 8, "fps": "24"})
    assert read_local(output, made) == {"frames": 8, "fps": "24"}
    assert read_local(output, {**made, "mode": "anaglyph"}) is None  # made from something else
    os.utime(output, ns=(1, 1))  # replaced since (as its size and time tell)
    assert read_local(output, made) is None
    write_local(output, made, {"frames": 8})
    Path(record_location(str(output))).write_text('{"format": 1, "recipe"')  # torn
    assert read_local(output, made) is None
    output.unlink()
    assert read_local(output, made) is None


def test_a_record_of_another_format_or_shape_is_not_reused() -> None:
    made, seen = {"task": "stereo"}, {"size": 5, "etag": '"e"'}
    good = {"format": 2, "recipe": made, "made": seen, "answer": {"frames": 3}}
    assert reusable(good, made, seen) == {"frames": 3}
    assert reusable({**good, "format": 1}, made, seen) is None  # before records named code and weights
    assert reusable({**good, "answer": [1]}, made, seen) is None
    assert reusable(json.loads(json.dumps(good)), made, None) is None  # the output is gone
    assert reusable("not a record", made, seen) is None
