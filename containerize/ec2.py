"""``stereocrafter-ec2-deploy``: the GPU EC2 host rolled to the new image through SSM (its NVIDIA
driver checked first, then the container replaced)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from containerize import cuda
from containerize.aws import (
    WEIGHTS_DIR,
    ConfigError,
    DeployError,
    ensure_image,
    git_sha,
    require,
    served_presets,
)
from stereocrafter.settings import Env

HOST_WEIGHTS = "/opt/stereocrafter/serving/weights"  # the host's folder for the downloaded weights
KEYS_EC2 = (
    "REGION",
    "ECR_STEREOCRAFTER_SAGEMAKER_URL",
)  # + EC2_INSTANCE_ID or _NAME, + the token or a mirror


def ec2_script(
    image: str,
    region: str,
    hf_token_arn: str,
    port: int = 8080,
    ready_timeout: int = 1800,
    presets: str | None = None,
    weights_s3: str | None = None,
) -> list[str]:
    """The shell run on the GPU host: ECR login, pull, replace the container, wait for /ping. With
    ``weights_s3`` (a weights-mirror prefix) the host syncs the mirror into its weights folder first
    and the container runs with no token and no Hub access (``HF_HUB_OFFLINE=1``); it verifies every
    file at start as after a download."""
    registry = image.split("/", 1)[0]
    tries = max(ready_timeout // 10, 1)
    major, minor = cuda.image_cuda()
    driver = cuda.MIN_DRIVER[major]
    return [
        "set -euo pipefail",
        # the host's driver must run the image's CUDA, or the new container would answer 503
        "driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n 1)",
        f'[ "${{driver%%.*}}" -ge {driver} ] || {{ echo "NVIDIA driver $driver on this host: the image\'s '
        f'CUDA {major}.{minor} needs {driver} or newer; the old container keeps running"; exit 1; }}',
        f"aws ecr get-login-password --region {region} "
        f"| docker login --username AWS --password-stdin {registry}",
        f"docker pull {image}",
        "docker rm -f stereocrafter 2>/dev/null || true",
        f"mkdir -p {HOST_WEIGHTS}",
        *(
            [
                f"aws s3 sync {weights_s3} {HOST_WEIGHTS} --region {region} --delete --exclude '.stamps/*' "
                "--exclude '*.from-onnx.safetensors' --only-show-errors"
            ]
            if weights_s3
            else []
        ),
        f"docker run -d --name stereocrafter --gpus all -p {port}:8080 --restart unless-stopped "
        + (f"-e {Env.HF_HUB_OFFLINE}=1 " if weights_s3 else f"-e {Env.HF_TOKEN_ARN}={hf_token_arn} ")
        + f"-e AWS_REGION={region} -e AWS_DEFAULT_REGION={region} "
        + (f"-e {Env.PRESETS}={presets} " if presets else "")
        + f"-e {Env.WEIGHTS_DIR}={WEIGHTS_DIR} -v {HOST_WEIGHTS}:{WEIGHTS_DIR} {image} serve",
        f"for i in $(seq 1 {tries}); do "
        f'[ "$(curl -s -o /dev/null -w "%{{http_code}}" localhost:{port}/ping)" = 200 ] '
        f'&& {{ echo "/ping 200"; exit 0; }}; sleep 10; done',
        "docker logs --tail 200 stereocrafter; exit 1",
    ]


def find_instance(ec2: Any, instance_id: str | None, name: str | None) -> str:
    if instance_id:
        return instance_id
    reservations = ec2.describe_instances(
        Filters=[
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": ["running"]},
        ]
    )["Reservations"]
    ids = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    if len(ids) != 1:
        raise DeployError(f"expected one running instance tagged Name={name}, found {len(ids)}")
    return str(ids[0])


def deploy_ec2(
    ssm: Any,
    instance: str,
    commands: list[str],
    *,
    sleep: Callable[[float], None] = time.sleep,
    delay: float = 10.0,
    timeout: float = 2400.0,
    out: Any = sys.stdout,
) -> None:
    command_id = ssm.send_command(
        InstanceIds=[instance],
        DocumentName="AWS-RunShellScript",
        Parameters={"commands": commands, "executionTimeout": [str(int(timeout))]},
        Comment="stereocrafter: roll to a new image",
    )["Command"]["CommandId"]
    print(f"SSM command {command_id} sent to {instance}", file=out)
    deadline = time.monotonic() + timeout
    while True:
        try:
            invocation = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance)
        except ssm.exceptions.InvocationDoesNotExist:
            invocation = {"Status": "Pending"}
        status = invocation["Status"]
        if status not in ("Pending", "InProgress", "Delayed"):
            break
        if time.monotonic() > deadline:
            raise DeployError(f"SSM command {command_id} still {status} after {timeout:.0f} s")
        sleep(delay)
    for stream in ("StandardOutputContent", "StandardErrorContent"):
        if invocation.get(stream):
            print(invocation[stream].rstrip(), file=out)
    if status != "Success":
        raise DeployError(f"SSM command {command_id} {status} (exit code {invocation.get('ResponseCode')})")
    print(f"{instance} runs the new image and answers /ping", file=out)


def run(args: argparse.Namespace, config: Mapping[str, str], make: Callable[[str, str], Any]) -> None:
    """The ``ec2`` command: find the host, check the image is in ECR, roll it through SSM."""
    c = require(config, KEYS_EC2)
    if not (config.get("EC2_INSTANCE_ID") or config.get("EC2_INSTANCE_NAME")):
        raise ConfigError("missing configuration: EC2_INSTANCE_ID or EC2_INSTANCE_NAME")
    tag = args.image_tag or git_sha()
    instance = find_instance(
        make("ec2", c["REGION"]), config.get("EC2_INSTANCE_ID"), config.get("EC2_INSTANCE_NAME")
    )
    image = f"{c['ECR_STEREOCRAFTER_SAGEMAKER_URL']}:{tag}"
    ensure_image(make("ecr", c["REGION"]), c["ECR_STEREOCRAFTER_SAGEMAKER_URL"], tag)
    presets = served_presets(args, config)
    weights_s3 = getattr(args, "weights_s3", None)
    if weights_s3:
        from containerize.weights_mirror import check_mirror, prefix_of
        from stereocrafter.catalog import parse_presets

        bucket, prefix = prefix_of(weights_s3)
        weights_s3 = f"s3://{bucket}/{prefix}"
        check_mirror(make("s3", c["REGION"]), weights_s3, parse_presets(presets or ""))
    elif not config.get("HF_TOKEN_SECRET_ARN"):
        raise ConfigError("missing configuration: HF_TOKEN_SECRET_ARN (or roll from a mirror: --weights-s3)")
    script = ec2_script(image, c["REGION"], config.get("HF_TOKEN_SECRET_ARN", ""), presets=presets,
                        weights_s3=weights_s3)  # fmt: skip
    deploy_ec2(make("ssm", c["REGION"]), instance, script)
