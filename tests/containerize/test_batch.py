"""``containerize.batch``: the transform jobs as moto receives them, the AMI rules, the segments file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from containerize.aws import ConfigError
from containerize.batch import read_segments
from containerize.deploy import main
from tests.containerize.helpers import ENV, push_image

DECLARED = "al2023-ami-sagemaker-batch-gpu-580"  # not listed by AWS yet: named with its driver


def _setup(aws: Any, tmp_path: Path, count: int = 3) -> tuple[Path, Path]:
    ecr = aws("ecr")
    ecr.create_repository(repositoryName="stereocrafter-sagemaker")
    push_image(ecr, "abc1234")
    aws("s3").create_bucket(Bucket="films")
    segments = tmp_path / "film.jsonl"
    lines = [{"s3_input_uri": f"s3://films/in/{i}.mp4", "s3_output_uri": f"s3://films/out/{i}.mp4"}
             for i in range(count)]  # fmt: skip
    segments.write_text("".join(json.dumps(line) + "\n" for line in lines))
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in ENV.items()) + "\n")
    return segments, env_file


def _batch(aws: Any, env_file: Path, segments: Path, *extra: str) -> int:
    return main(["--env-file", str(env_file), "batch", "--segments", str(segments), "--work", "s3://films/jobs/",
                 "--image-tag", "abc1234", "--wait-delay", "0", "--wait-attempts", "3", *extra],
                clients=lambda name, region: aws(name))  # fmt: skip


def test_the_depth_job_reaches_sagemaker_as_batch_transform_expects(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What moto received: the manifest under the job's prefix, line-split, one record per request,
    the AMI, the instances and one request per GPU at once. moto's job completes at once and writes
    no answer, so every segment is reported as not converted (exit 1), with where the output went."""
    segments, env_file = _setup(aws, tmp_path)
    code = _batch(aws, env_file, segments, "--instance-type", "ml.g4dn.12xlarge", "--instance-count", "2",
                  "--ami", DECLARED, "--ami-driver", "580", "--preset", "instant")  # fmt: skip
    out = capsys.readouterr()
    assert code == 1 and "segments [0, 1, 2] were not converted" in out.err
    sm = aws("sagemaker")
    names = [j["TransformJobName"] for j in sm.list_transform_jobs()["TransformJobSummaries"]]
    assert len(names) == 1 and "-depth-" in names[0]  # no depth answer: no stereo job
    job = sm.describe_transform_job(TransformJobName=names[0])
    prefix = f"s3://films/jobs/{names[0]}"
    assert job["TransformInput"]["SplitType"] == "Line" and job["BatchStrategy"] == "SingleRecord"
    assert job["TransformInput"]["DataSource"]["S3DataSource"] == {
        "S3DataType": "S3Prefix",
        "S3Uri": f"{prefix}/in/",
    }
    assert job["TransformResources"] == {"InstanceType": "ml.g4dn.12xlarge", "InstanceCount": 2,
                                         "TransformAmiVersion": DECLARED}  # fmt: skip
    assert job["MaxConcurrentTransforms"] == 4 and job["MaxPayloadInMB"] == 1  # 4 GPUs per instance
    assert (
        job["TransformOutput"]["S3OutputPath"] == f"{prefix}/out/"
        and job["ModelName"] == names[0].split("-depth-")[0]
    )
    assert job["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 3600, "InvocationsMaxRetries": 1}
    assert f"output: {prefix}/out/" in out.out and "CloudWatch /aws/sagemaker/TransformJobs" in out.out
    s3 = aws("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="films", Prefix=f"jobs/{names[0]}/in/")["Contents"]]
    lines = [
        json.loads(line)
        for key in keys
        for line in s3.get_object(Bucket="films", Key=key)["Body"].read().splitlines()
    ]
    assert len(keys) == 3 and [line["s3_input_uri"] for line in lines] == [
        f"s3://films/in/{i}.mp4" for i in range(3)
    ]
    assert lines[0] == {"task": "depth", "s3_input_uri": "s3://films/in/0.mp4", "depth_output_uri": "s3://films/out/0.mp4.depth.mkv",
                        "preset": "instant", "reuse": True}  # fmt: skip


def test_no_listed_batch_ami_starts_this_image(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    segments, env_file = _setup(aws, tmp_path)
    assert _batch(aws, env_file, segments) == 2
    assert "drivers 470 and 535" in capsys.readouterr().err
    assert _batch(aws, env_file, segments, "--ami", "al2-ami-sagemaker-batch-gpu-535") == 2
    assert "driver 535" in capsys.readouterr().err
    assert (
        _batch(aws, env_file, segments, "--ami", DECLARED, "--ami-driver", "535") == 2
    )  # declared, still too old
    assert aws("sagemaker").list_models()["Models"] == []  # refused before anything was created


def test_a_cpu_instance_sends_no_ami(aws: Any, tmp_path: Path) -> None:
    """A CPU instance runs the licence-clean presets slowly, with no GPU AMI to choose."""
    segments, env_file = _setup(aws, tmp_path, count=1)
    assert _batch(aws, env_file, segments, "--instance-type", "ml.m5.xlarge", "--preset", "instant") == 1
    sm = aws("sagemaker")
    name = sm.list_transform_jobs()["TransformJobSummaries"][0]["TransformJobName"]
    resources = sm.describe_transform_job(TransformJobName=name)["TransformResources"]
    assert resources == {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1}
    model = sm.describe_model(ModelName=name.split("-depth-")[0])
    assert model["PrimaryContainer"]["Environment"]["STEREOCRAFTER_DEVICE"] == "cpu"  # the image says cuda
    assert _batch(aws, env_file, segments, "--instance-type", "ml.m5.xlarge", "--ami", DECLARED) == 2


def test_the_model_serves_only_the_preset_the_film_is_converted_with(aws: Any, tmp_path: Path) -> None:
    """An instant film's model loads VDA-S and nothing else: no SVD token, no 8 GB download, no
    diffusion UNet in fp32 on a CPU instance; without --preset, the image's default alone;
    --presets still chooses."""
    segments, env_file = _setup(aws, tmp_path, count=1)
    sm = aws("sagemaker")

    def served(*extra: str) -> dict[str, str]:
        before = {m["ModelName"] for m in sm.list_models()["Models"]}
        _batch(aws, env_file, segments, "--instance-type", "ml.m5.xlarge", *extra)
        (new,) = {m["ModelName"] for m in sm.list_models()["Models"]} - before
        environment: dict[str, str] = sm.describe_model(ModelName=new)["PrimaryContainer"]["Environment"]
        return environment

    instant = served("--preset", "instant")
    assert (instant["STEREOCRAFTER_PRESETS"], instant["STEREOCRAFTER_PRESET"]) == ("instant", "instant")
    default = served()
    assert (default["STEREOCRAFTER_PRESETS"], default["STEREOCRAFTER_PRESET"]) == ("reference", "reference")
    chosen = served("--preset", "clean", "--presets", "clean,instant")
    assert (chosen["STEREOCRAFTER_PRESETS"], chosen["STEREOCRAFTER_PRESET"]) == ("clean,instant", "clean")


def test_a_rerun_finds_its_transform_job_by_name_instead_of_starting_another(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The job's name is the digest of its manifest and settings: the same command again finds the
    job (here completed at once, as moto's are) and starts no second one over the same outputs;
    another film is another job."""
    segments, env_file = _setup(aws, tmp_path, count=2)
    command = ("--instance-type", "ml.m5.xlarge", "--preset", "instant")
    sm = aws("sagemaker")
    assert _batch(aws, env_file, segments, *command) == 1
    (first,) = [j["TransformJobName"] for j in sm.list_transform_jobs()["TransformJobSummaries"]]
    capsys.readouterr()
    assert _batch(aws, env_file, segments, *command) == 1
    assert [j["TransformJobName"] for j in sm.list_transform_jobs()["TransformJobSummaries"]] == [first]
    assert f"{first}: found completed" in capsys.readouterr().out
    assert len(sm.list_models()["Models"]) == 1  # the model too is found by its name
    segments.write_text(segments.read_text().replace("1.mp4", "2.mp4"))
    assert _batch(aws, env_file, segments, *command) == 1
    assert len(sm.list_transform_jobs()["TransformJobSummaries"]) == 2


def test_a_wait_that_runs_out_stops_the_job_or_says_it_still_bills(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No wait left: the job is stopped, never silently left running. moto has no StopTransformJob,
    so here the stop fails and the error says the job still runs, and how to stop it or wait again."""
    segments, env_file = _setup(aws, tmp_path, count=1)
    code = main(["--env-file", str(env_file), "batch", "--segments", str(segments), "--work", "s3://films/jobs/",
                 "--image-tag", "abc1234", "--wait-delay", "0", "--wait-attempts", "0",
                 "--instance-type", "ml.m5.xlarge", "--preset", "instant"],
                clients=lambda name, region: aws(name))  # fmt: skip
    err = capsys.readouterr().err
    (name,) = [j["TransformJobName"] for j in aws("sagemaker").list_transform_jobs()["TransformJobSummaries"]]
    assert code == 1 and f"{name} did not finish within 0 s" in err
    assert f"stop-transform-job --transform-job-name {name}" in err and "still running and billing" in err


def test_the_segments_file_is_checked_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"s3_input_uri": "s3://a/1.mp4", "s3_output_uri": "s3://a/o1.mp4"}\n\n{"s3_input_uri": 1}\n'
    )
    with pytest.raises(ConfigError, match=r"s\.jsonl:3"):
        read_segments(path)
    path.write_text("\n")
    with pytest.raises(ConfigError, match="names no segment"):
        read_segments(path)
