"""The deploy CLI: moto's server for the stateful AWS flows, botocore's Stubber for what moto cannot
show (build status over time, failed builds and commands, endpoint updates and their rollback)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber

from containerize.deploy import (
    ConfigError,
    DeployError,
    SageMakerTarget,
    build,
    deploy_ec2,
    deploy_sagemaker,
    ec2_script,
    ensure_image,
    find_instance,
    main,
    prune,
    read_env_file,
    require,
    resource_name,
)

ROOT = Path(__file__).resolve().parents[1]
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/stereocrafter-sagemaker"
SECRET = "arn:aws:secretsmanager:us-east-1:123456789012:secret:hf-token-AbCdEf"
ENV = {
    "CODEBUILD_PROJECT_NAME": "stereocrafter-build",
    "REGION": "us-east-1",
    "SAGEMAKER_ENDPOINT_NAME": "stereocrafter",
    "SAGEMAKER_ENDPOINT_ROLE_ARN": ROLE,
    "SAGEMAKER_INSTANCE_TYPE": "ml.g4dn.xlarge",  # moto's list is old (no ml.g5); real value from terraform
    "SAGEMAKER_INSTANCE_COUNT": "1",
    "ECR_STEREOCRAFTER_SAGEMAKER_URL": IMAGE,
    "HF_TOKEN_SECRET_ARN": SECRET,
    "EC2_INSTANCE_NAME": "stereocrafter-gpu",
}


def push_image(ecr, tag: str) -> None:
    """Put a (minimal) image manifest under ``tag`` in the stereocrafter-sagemaker repository."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {},
        "layers": [],
    }
    ecr.put_image(repositoryName="stereocrafter-sagemaker", imageManifest=json.dumps(manifest), imageTag=tag)


def offline(name: str):
    return boto3.client(name, region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b")


def target(**overrides: object) -> SageMakerTarget:
    values = {
        "endpoint": "stereocrafter",
        "role_arn": ROLE,
        "instance_type": "ml.g4dn.xlarge",
        "instance_count": 1,
        "image": f"{IMAGE}:abc1234",
        "hf_token_arn": SECRET,
    }
    return SageMakerTarget(**{**values, **overrides})  # type: ignore[arg-type]


# --- configuration ---------------------------------------------------------------------------


def test_env_file_and_missing_keys(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        '# from terraform-output\nREGION=us-east-1\nexport ECR_STEREOCRAFTER_SAGEMAKER_URL="repo/x"\n\n'
    )
    config = read_env_file(env, environ={"REGION": "eu-west-1"})
    assert config["REGION"] == "eu-west-1"  # the environment wins, as with Nx's envFile
    assert config["ECR_STEREOCRAFTER_SAGEMAKER_URL"] == "repo/x"
    with pytest.raises(
        ConfigError, match=r"missing configuration: SAGEMAKER_ENDPOINT_NAME, SAGEMAKER_ENDPOINT_ROLE_ARN"
    ):
        require(config, ("REGION", "SAGEMAKER_ENDPOINT_NAME", "SAGEMAKER_ENDPOINT_ROLE_ARN"))
    with pytest.raises(ConfigError, match="does not exist"):
        read_env_file(tmp_path / "nope.env", environ={})
    (tmp_path / "bad.env").write_text("REGION us-east-1\n")
    with pytest.raises(ConfigError, match=r"bad\.env:1"):
        read_env_file(tmp_path / "bad.env", environ={})


def test_cli_exit_code_2_names_the_missing_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_text("REGION=us-east-1\n")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in ENV}
    try:
        assert main(["--env-file", str(env), "build", "--source-version", "abc"]) == 2
    finally:
        os.environ.update(saved)
    assert "CODEBUILD_PROJECT_NAME" in capsys.readouterr().err


def test_resource_names_are_valid_and_unique() -> None:
    a = resource_name("0123456789abcdef", datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))
    b = resource_name("0123456789abcdef", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC))
    assert a == "stereocrafter-0123456-20261127-120000" and a != b and len(a) <= 63


# --- build -----------------------------------------------------------------------------------


def _build(status: str, phases: list | None = None, logs: bool = True) -> dict:
    info: dict = {
        "id": "stereocrafter-build:42",
        "buildStatus": status,
        "currentPhase": "BUILD",
        "phases": phases or [],
    }
    if logs:
        info["logs"] = {"groupName": "/aws/codebuild/stereocrafter-build", "streamName": "42"}
    return info


def test_build_polls_streams_logs_and_succeeds() -> None:
    codebuild, logs = offline("codebuild"), offline("logs")
    out = io.StringIO()
    with Stubber(codebuild) as cb, Stubber(logs) as lg:
        cb.add_response(
            "start_build",
            {"build": _build("IN_PROGRESS", logs=False)},
            {
                "projectName": "stereocrafter-build",
                "sourceVersion": "f" * 40,
                "environmentVariablesOverride": [
                    {"name": "IMAGE_TAG", "value": "f" * 12, "type": "PLAINTEXT"}
                ],
            },
        )
        cb.add_response(
            "batch_get_builds", {"builds": [_build("IN_PROGRESS", logs=False)]}
        )  # stream not there yet
        cb.add_response("batch_get_builds", {"builds": [_build("IN_PROGRESS")]})
        lg.add_response(
            "get_log_events", {"events": [{"message": "bentoml build ...\n"}], "nextForwardToken": "t1"}
        )
        lg.add_response("get_log_events", {"events": [], "nextForwardToken": "t1"})
        cb.add_response("batch_get_builds", {"builds": [_build("SUCCEEDED")]})
        lg.add_response(
            "get_log_events", {"events": [{"message": "pushed :latest\n"}], "nextForwardToken": "t2"}
        )
        lg.add_response("get_log_events", {"events": [], "nextForwardToken": "t2"})
        sleeps: list[float] = []
        tag = build(codebuild, logs, "stereocrafter-build", "f" * 40, sleep=sleeps.append, out=out)
    assert tag == "f" * 12
    assert "bentoml build ..." in out.getvalue() and "pushed :latest" in out.getvalue()
    assert sleeps == [5.0, 7.5]  # backoff


@pytest.mark.parametrize("status", ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"])
def test_build_failure_names_the_phase(status: str) -> None:
    codebuild, logs = offline("codebuild"), offline("logs")
    phases = [
        {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
        {
            "phaseType": "BUILD",
            "phaseStatus": "FAILED",
            "contexts": [
                {"statusCode": "COMMAND_EXECUTION_ERROR", "message": "bentoml containerize: exit status 1"}
            ],
        },
    ]
    with Stubber(codebuild) as cb, Stubber(logs) as lg:
        cb.add_response("start_build", {"build": _build("IN_PROGRESS", logs=False)})
        cb.add_response("batch_get_builds", {"builds": [_build(status, phases)]})
        lg.add_client_error("get_log_events", service_error_code="ResourceNotFoundException")
        with pytest.raises(
            DeployError, match=f"{status}: phase BUILD FAILED: bentoml containerize: exit status 1"
        ):
            build(codebuild, logs, "p", "a" * 40, sleep=lambda s: None, out=io.StringIO())


# --- sagemaker -------------------------------------------------------------------------------


def test_first_deploy_creates_model_config_and_endpoint_in_moto(aws) -> None:
    sm = aws("sagemaker")
    name = deploy_sagemaker(
        sm, target(volume_gb=100), "abc1234", wait_delay=1, wait_attempts=3, out=io.StringIO()
    )
    model = sm.describe_model(ModelName=name)["PrimaryContainer"]
    assert model["Image"] == f"{IMAGE}:abc1234"
    assert model["Environment"] == {
        "HF_TOKEN_ARN": SECRET,
        "WEIGHTS_DIR": "/opt/ml/model/weights",
        "BENTOML_PORT": "8080",
    }
    variant = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 1800 and variant["VolumeSizeInGB"] == 100
    assert sm.describe_endpoint(EndpointName="stereocrafter")["EndpointConfigName"] == name


def test_the_endpoint_config_names_the_ami_whose_driver_runs_the_image(aws) -> None:
    """InferenceAmiVersion as moto's server received it (botocore's request, read back from moto):
    without it an endpoint gets driver 470 or 535, which cannot start torch 2.13's CUDA 13.0."""
    sm = aws("sagemaker")
    out = io.StringIO()
    name = deploy_sagemaker(sm, target(), "abc1234", wait_delay=1, wait_attempts=3, out=out)
    variant = sm.describe_endpoint_config(EndpointConfigName=name)["ProductionVariants"][0]
    assert variant["InferenceAmiVersion"] == "al2023-ami-sagemaker-inference-gpu-4-1"
    assert "AMI al2023-ami-sagemaker-inference-gpu-4-1, NVIDIA driver 580, CUDA 13.0" in out.getvalue()


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"ami": "al2-ami-sagemaker-inference-gpu-3-1"}, "driver 550 (CUDA 12.4): CUDA would not start"),
        ({"ami": "al2-ami-sagemaker-inference-gpu-2"}, "driver 535 (CUDA 12.2)"),
        ({"ami": "al2-gpu-9"}, "unknown InferenceAmiVersion 'al2-gpu-9'"),
        ({"instance_type": "ml.p3.2xlarge"}, "compute capability 7.0) is older than CUDA 13 supports"),
    ],
)
def test_an_ami_or_gpu_that_cannot_run_the_image_is_refused_before_anything_is_made(
    aws, overrides: dict[str, str], says: str
) -> None:
    sm = aws("sagemaker")
    with pytest.raises(ConfigError, match=re.escape(says)):
        deploy_sagemaker(sm, target(**overrides), "abc1234", wait_delay=1, wait_attempts=3, out=io.StringIO())
    assert sm.list_models()["Models"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_async_config_in_moto(aws) -> None:
    sm = aws("sagemaker")
    t = target(
        async_output="s3://results/out/",
        async_failure="s3://results/failed/",
        success_topic="arn:aws:sns:us-east-1:123456789012:ok",
    )
    name = deploy_sagemaker(sm, t, "abc1234", wait_delay=1, wait_attempts=3, out=io.StringIO())
    config = sm.describe_endpoint_config(EndpointConfigName=name)["AsyncInferenceConfig"]
    assert config["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == 1  # ml.g4dn.xlarge: 1 GPU
    assert config["OutputConfig"]["S3OutputPath"] == "s3://results/out/"
    assert config["OutputConfig"]["NotificationConfig"] == {
        "SuccessTopic": "arn:aws:sns:us-east-1:123456789012:ok"
    }


def _stub_update(sm_stub: Stubber, final_config: str, reason: str | None) -> None:
    sm_stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"})
    sm_stub.add_response(
        "create_endpoint_config",
        {"EndpointConfigArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/c"},
    )
    sm_stub.add_response("describe_endpoint", _endpoint("old-config"))
    sm_stub.add_response(
        "update_endpoint",
        {"EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/stereocrafter"},
        {"EndpointName": "stereocrafter", "EndpointConfigName": ANY},
    )
    sm_stub.add_response("describe_endpoint", _endpoint(final_config, reason))  # the waiter's poll
    sm_stub.add_response("describe_endpoint", _endpoint(final_config, reason))  # the check after it


def _endpoint(config: str, reason: str | None = None) -> dict:
    now = datetime.now(UTC)
    info = {
        "EndpointName": "stereocrafter",
        "EndpointArn": "arn:aws:sagemaker:us-east-1:123456789012:endpoint/stereocrafter",
        "EndpointConfigName": config,
        "EndpointStatus": "InService",
        "CreationTime": now,
        "LastModifiedTime": now,
    }
    if reason:
        info["FailureReason"] = reason
    return info


def test_rolled_back_update_is_detected() -> None:
    """The waiter says InService even when the update failed and rolled back: compare the config."""
    sm = offline("sagemaker")
    with Stubber(sm) as stub:
        _stub_update(
            stub,
            "old-config",
            "The primary container for production variant AllTraffic did not pass the ping health check.",
        )
        with pytest.raises(DeployError, match=r"did not take .*ping health check"):
            deploy_sagemaker(sm, target(), "abc1234", wait_delay=1, wait_attempts=2, out=io.StringIO())


def test_successful_update_then_prune(aws) -> None:
    """Update path stubbed (moto has no UpdateEndpoint); pruning runs against moto's real state."""
    real = aws("sagemaker")
    names = [f"stereocrafter-old{i}-2026010{i}-000000" for i in range(4)]
    for name in names:
        real.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": f"{IMAGE}:x"})
        real.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InstanceType": "ml.g4dn.xlarge",
                    "InitialInstanceCount": 1,
                }
            ],
        )
    deleted = prune(real, keep=2, in_use=names[-1], out=io.StringIO())
    assert sorted(deleted) == sorted(names[:2] * 2)
    left = {m["ModelName"] for m in real.list_models(NameContains="stereocrafter-")["Models"]}
    assert left == set(names[2:])


# --- ec2 -------------------------------------------------------------------------------------


def test_ec2_finds_the_host_and_runs_the_roll(aws) -> None:
    ec2 = aws("ec2")
    image_id = ec2.describe_images()["Images"][0]["ImageId"]
    ec2.run_instances(
        ImageId=image_id,
        MinCount=1,
        MaxCount=1,
        InstanceType="g5.xlarge",
        TagSpecifications=[
            {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "stereocrafter-gpu"}]}
        ],
    )
    instance = find_instance(ec2, None, "stereocrafter-gpu")
    assert instance.startswith("i-")
    with pytest.raises(DeployError, match="found 0"):
        find_instance(ec2, None, "other")
    out = io.StringIO()
    commands = ec2_script(f"{IMAGE}:abc1234", "us-east-1", SECRET)
    deploy_ec2(aws("ssm"), instance, commands, sleep=lambda s: None, out=out)
    assert "runs the new image" in out.getvalue()


def test_the_presets_served_reach_the_endpoint_and_the_host(aws) -> None:
    """``--presets`` (or STEREOCRAFTER_PRESETS in the .env) becomes the container's
    STEREOCRAFTER_PRESETS on SageMaker and on the EC2 host; an unknown preset stops the deploy."""
    import argparse

    from containerize.deploy import ConfigError, served_presets

    assert served_presets(argparse.Namespace(presets=None), {}) is None
    assert served_presets(argparse.Namespace(presets=None), {"STEREOCRAFTER_PRESETS": "turbo"}) == "turbo"
    assert (
        served_presets(argparse.Namespace(presets=" turbo, fast"), {"STEREOCRAFTER_PRESETS": "x"})
        == "turbo,fast"
    )
    with pytest.raises(ConfigError, match="unknown preset 'quick'"):
        served_presets(argparse.Namespace(presets="quick"), {})
    sm = aws("sagemaker")
    name = deploy_sagemaker(
        sm, target(presets="turbo"), "abc1234", wait_delay=1, wait_attempts=3, out=io.StringIO()
    )
    assert (
        sm.describe_model(ModelName=name)["PrimaryContainer"]["Environment"]["STEREOCRAFTER_PRESETS"]
        == "turbo"
    )
    script = "\n".join(ec2_script(f"{IMAGE}:abc1234", "us-east-1", SECRET, presets="turbo"))
    assert "-e STEREOCRAFTER_PRESETS=turbo -e WEIGHTS_DIR=" in script
    assert "STEREOCRAFTER_PRESETS" not in "\n".join(ec2_script(f"{IMAGE}:abc1234", "us-east-1", SECRET))
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


def test_ec2_script_contents() -> None:
    script = "\n".join(ec2_script(f"{IMAGE}:abc1234", "us-east-1", SECRET))
    assert (
        "docker login --username AWS --password-stdin 123456789012.dkr.ecr.us-east-1.amazonaws.com" in script
    )
    assert f"docker pull {IMAGE}:abc1234" in script
    assert "--gpus all -p 8080:8080 --restart unless-stopped" in script
    assert f"-e HF_TOKEN_ARN={SECRET}" in script and "localhost:8080/ping" in script
    assert script.endswith("exit 1")
    # The script is valid bash.
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.parametrize(("driver", "rolls"), [("580.95.05", True), ("590.10", True), ("550.163.01", False)])
def test_the_ec2_roll_stops_on_a_host_whose_driver_cannot_run_the_image(
    tmp_path: Path, driver: str, rolls: bool
) -> None:
    """The script's first step, run by bash against an nvidia-smi that reports ``driver``: a host
    on driver 550 keeps its old container (nothing pulled or removed) and says why."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool, body in (
        ("nvidia-smi", f"echo {driver}"),
        ("aws", "exit 0"),
        ("docker", "echo docker $1 >> calls"),
    ):
        (fake / tool).write_text(f"#!/bin/sh\n{body}\n")
        (fake / tool).chmod(0o755)
    lines = ec2_script(f"{IMAGE}:abc1234", "us-east-1", SECRET)
    script = "\n".join([*lines[:3], "echo rolled"])  # the driver check, then where the roll starts
    done = subprocess.run(["bash", "-c", script], env={"PATH": f"{fake}:/usr/bin:/bin"}, cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert (done.returncode == 0) is rolls and ("rolled" in done.stdout) is rolls
    if not rolls:
        assert f"NVIDIA driver {driver} on this host: the image's CUDA 13.0 needs 580 or newer" in done.stdout


def test_ec2_failed_command_reports_output() -> None:
    ssm = offline("ssm")
    out = io.StringIO()
    with Stubber(ssm) as stub:
        stub.add_response("send_command", {"Command": {"CommandId": "0b9a6f1e-4c1d-4a8e-9f2b-1c2d3e4f5a6b"}})
        stub.add_client_error("get_command_invocation", service_error_code="InvocationDoesNotExist")
        stub.add_response("get_command_invocation", {"Status": "InProgress"})
        stub.add_response(
            "get_command_invocation",
            {
                "Status": "Failed",
                "ResponseCode": 1,
                "StandardOutputContent": "pulling...",
                "StandardErrorContent": "no space left on device",
            },
        )
        with pytest.raises(DeployError, match=r"0b9a6f1e-4c1d-4a8e-9f2b-1c2d3e4f5a6b Failed \(exit code 1\)"):
            deploy_ec2(ssm, "i-123", ["true"], sleep=lambda s: None, out=out)
    assert "no space left on device" in out.getvalue()


# --- the real CLI in a subprocess against moto --------------------------------------------------


def test_cli_sagemaker_against_moto(moto_server: str, tmp_path: Path) -> None:
    import requests

    requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(f"{k}={v}" for k, v in ENV.items()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(
        {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    )
    command = [
        sys.executable,
        "-m",
        "containerize.deploy",
        "--env-file",
        str(env_file),
        "sagemaker",
        "--image-tag",
        "abc1234",
        "--wait-delay",
        "1",
        "--wait-attempts",
        "3",
    ]
    # Nothing pushed yet: refused before any SageMaker resource is created.
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "is not in ECR" in result.stderr
    sm = boto3.client("sagemaker", endpoint_url=moto_server, region_name="us-east-1")
    assert sm.list_models()["Models"] == []
    ecr = boto3.client("ecr", endpoint_url=moto_server, region_name="us-east-1")
    ecr.create_repository(repositoryName="stereocrafter-sagemaker")
    push_image(ecr, "abc1234")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "endpoint stereocrafter InService" in result.stdout
    assert sm.describe_endpoint(EndpointName="stereocrafter")["EndpointStatus"] == "InService"


def test_project_json_targets_exist() -> None:
    project = json.loads((ROOT / "project.json").read_text())
    targets = project["targets"]
    for name in ("sagemaker-build", "sagemaker-deploy", "stereocrafter-ec2-deploy", "serve", "test", "lint"):
        assert targets[name]["executor"] == "nx:run-commands", name
    deploy = {"sagemaker-build": "build", "sagemaker-deploy": "sagemaker", "stereocrafter-ec2-deploy": "ec2"}
    for name, sub in deploy.items():
        options = targets[name]["options"]
        assert (
            f"-m containerize.deploy --env-file {{workspaceRoot}}/{options['envFile']} {sub}"
            in options["command"]
        )
        assert targets[name]["dependsOn"] == [{"projects": ["aws-infra"], "target": "terraform-output"}]
    # Every subcommand the targets name exists in the CLI.
    for sub in deploy.values():
        with pytest.raises(SystemExit) as caught:
            main([sub, "--help"])
        assert caught.value.code == 0
    assert targets["test"]["options"]["command"] == "make test"
    assert "bentoml serve service:StereoCrafter" in (ROOT / "Makefile").read_text()


def test_buildspec_builds_containerizes_and_pushes_both_tags() -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "containerize" / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    commands = {phase: "\n".join(spec["phases"][phase]["commands"]) for phase in spec["phases"]}
    assert "docker login --username AWS --password-stdin" in commands["pre_build"]
    assert 'bentoml build --version "$IMAGE_TAG"' in commands["build"]
    assert 'bentoml containerize "$BENTO_NAME:$IMAGE_TAG"' in commands["build"]
    assert "cache-from" in commands["build"]
    assert 'docker push "$IMAGE_REPO:$IMAGE_TAG"' in commands["post_build"]
    assert 'docker push "$IMAGE_REPO:latest"' in commands["post_build"]
    assert (
        spec["env"]["variables"]["BENTO_NAME"]
        == yaml.safe_load((ROOT / "bentofile.yaml").read_text())["name"]
    )
    # The packages it installs are pinned in requirements/runtime.txt.
    runtime = (ROOT / "requirements" / "runtime.txt").read_text()
    for name in ("bentoml", "fastapi", "pydantic", "pydantic_core", "starlette", "anyio"):
        assert f"\n{name}==" in runtime, name


def test_image_must_exist_in_ecr(aws) -> None:
    ecr = aws("ecr")
    uri = ecr.create_repository(repositoryName="stereocrafter-sagemaker")["repository"]["repositoryUri"]
    push_image(ecr, "abc1234")
    assert ensure_image(ecr, uri, "abc1234").startswith("sha256:")
    with pytest.raises(DeployError, match="is not in ECR"):
        ensure_image(ecr, uri, "0000000")
    with pytest.raises(DeployError, match="is not in ECR"):
        ensure_image(ecr, "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing-repo", "abc1234")


def test_build_log_streaming_against_moto_logs(aws) -> None:
    from containerize.deploy import _stream_logs

    logs = aws("logs")
    logs.create_log_group(logGroupName="/aws/codebuild/p")
    where = {"groupName": "/aws/codebuild/p", "streamName": "42"}
    out = io.StringIO()
    assert _stream_logs(logs, where, None, out) is None  # the stream does not exist yet
    logs.create_log_stream(logGroupName="/aws/codebuild/p", logStreamName="42")
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName="/aws/codebuild/p",
        logStreamName="42",
        logEvents=[{"timestamp": now, "message": "[Container] phase INSTALL"}],
    )
    token = _stream_logs(logs, where, None, out)
    logs.put_log_events(
        logGroupName="/aws/codebuild/p",
        logStreamName="42",
        logEvents=[{"timestamp": now + 1, "message": "bentoml build done"}],
    )
    _stream_logs(logs, where, token, out)
    assert out.getvalue().splitlines() == ["[Container] phase INSTALL", "bentoml build done"]


@pytest.mark.parametrize(
    ("instance_type", "override", "expected"),
    [("ml.g4dn.12xlarge", None, 4), ("ml.g4dn.2xlarge", None, 1), ("ml.g4dn.12xlarge", 2, 2)],
)  # moto knows the g4dn family only
def test_async_concurrency_follows_the_instances_gpus(
    aws, instance_type: str, override, expected: int
) -> None:
    sm = aws("sagemaker")
    t = target(instance_type=instance_type, async_output="s3://results/out/", max_concurrent=override)
    name = deploy_sagemaker(sm, t, "abc1234", wait_delay=1, wait_attempts=3, out=io.StringIO())
    config = sm.describe_endpoint_config(EndpointConfigName=name)["AsyncInferenceConfig"]
    assert config["ClientConfig"]["MaxConcurrentInvocationsPerInstance"] == expected


def test_the_gpu_table() -> None:
    from containerize.deploy import gpus_of

    big = ("ml.g6e.12xlarge", "ml.g6e.48xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge")
    assert [gpus_of(t) for t in big] == [4, 8, 8, 8]
    assert gpus_of("ml.g5.2xlarge") == 1 and gpus_of("ml.unknown.9xlarge") == 1
