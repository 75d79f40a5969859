"""``serving.jobs``: the S3 jobs under one job context, called directly (no HTTP) against moto: the
prelude refuses what it can before any download, and a refused job writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stereocrafter.errors import LimitExceededError, OutputExistsError
from stereocrafter.jobs.context import Job
from stereocrafter.pipeline.run import StereoPipeline
from stereocrafter.serving.jobs import run_job
from stereocrafter.serving.schemas import parse_invocation
from stereocrafter.serving.storage import S3Storage
from stereocrafter.settings import load_settings
from stereocrafter.testing.media import make_video, scene_frames


@pytest.fixture
def stereo(depth_pipeline, inpainting_pipeline) -> StereoPipeline:  # type: ignore[no-untyped-def]
    return StereoPipeline(depth_pipeline, inpainting_pipeline)


def _job(s3, env: dict[str, str], body: str) -> tuple[Job, object]:  # type: ignore[no-untyped-def]
    settings = load_settings({"STEREOCRAFTER_DEVICE": "cpu", "STEREOCRAFTER_DEPTH_STEPS": "1",
                              "STEREOCRAFTER_INPAINT_STEPS": "1", **env})  # fmt: skip
    request = parse_invocation(body.encode(), settings)
    return Job(config=request.config, request_id="t1", settings=settings, storage=S3Storage(s3)), request


def test_an_existing_output_is_refused_before_any_work_with_overwrite_false(
    s3,
    stereo: StereoPipeline,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    clip = make_video(tmp_path / "c.mp4", scene_frames(6, 64, 48), fps=24)
    s3.upload_file(str(clip), "videos", "in/c.mp4")
    s3.put_object(Bucket="videos", Key="out/c.mp4", Body=b"keep me")
    body = json.dumps({"s3_input_uri": "s3://videos/in/c.mp4", "s3_output_uri": "s3://videos/out/c.mp4",
                       "overwrite": False})  # fmt: skip
    job, request = _job(s3, {}, body)
    with pytest.raises(OutputExistsError):
        run_job(stereo, job, request)  # type: ignore[arg-type]
    assert s3.get_object(Bucket="videos", Key="out/c.mp4")["Body"].read() == b"keep me"
    assert list(job.timings) == []  # stopped in the prelude: nothing downloaded


def test_a_segment_over_the_input_limit_is_refused_before_the_download(
    s3,
    stereo: StereoPipeline,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    s3.put_object(Bucket="videos", Key="in/big.mp4", Body=b"x" * 5000)
    body = '{"s3_input_uri": "s3://videos/in/big.mp4", "s3_output_uri": "s3://videos/out/big.mp4"}'
    job, request = _job(s3, {"STEREOCRAFTER_MAX_INPUT_BYTES": "4096"}, body)
    with pytest.raises(LimitExceededError, match="the limit is 4096 bytes"):
        run_job(stereo, job, request)  # type: ignore[arg-type]
    assert "download" not in job.timings and "Contents" not in s3.list_objects_v2(
        Bucket="videos", Prefix="out/"
    )
    assert job.config.preset == "reference" and job.config.depth_steps == 1  # resolved once, at the parse
