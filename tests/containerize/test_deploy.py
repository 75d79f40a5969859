"""``containerize.deploy``: the command line over the targets (exit statuses, against moto), the
presets served, the Nx targets."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from containerize.aws import ConfigError
from containerize.deploy import main
from containerize.ec2 import ec2_script
from containerize.sagemaker import deploy_sagemaker
from tests.containerize.helpers import ENV, IMAGE, ROOT, SECRET, push_image, target

# --- configuration ---------------------------------------------------------------------------


def test_cli_exit_code_2_names_the_missing_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env = tmp_path / ".env"
    env.write_text("REGION=us-east-1\n")
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k in ENV}
    try:
        assert main(["--env-file", str(env), "build", "--source-version", "abc"]) == 2
    finally:
        os.environ.update(saved)
    assert "CODEBUILD_PROJECT_NAME" in capsys.readouterr().err


def test_the_presets_served_reach_the_endpoint_and_the_host(aws) -> None:
    """``--presets`` (or STEREOCRAFTER_PRESETS in the .env) becomes the container's
    STEREOCRAFTER_PRESETS on SageMaker and on the EC2 host; an unknown preset stops the deploy."""
    import argparse

    from containerize.aws import served_presets

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
    deploy = {"sagemaker-build": "build", "sagemaker-deploy": "sagemaker", "stereocrafter-ec2-deploy": "ec2",
              "sagemaker-batch": "batch", "weights-mirror": "weights-mirror"}  # fmt: skip
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
