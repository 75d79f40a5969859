"""``containerize.ec2``: the host found and rolled through SSM, the script and its driver check, a
failed command's output."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest
from botocore.stub import Stubber

from containerize.aws import DeployError
from containerize.ec2 import deploy_ec2, ec2_script, find_instance
from tests.containerize.helpers import IMAGE, SECRET, offline


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
