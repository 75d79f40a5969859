"""Build and deploy CLI (the Nx targets call it): CodeBuild image build, SageMaker, GPU EC2 via SSM.

    python -m containerize.deploy [--env-file .env] build      [--source-version SHA]
    python -m containerize.deploy [--env-file .env] sagemaker  [--image-tag SHA] [--async ...]
    python -m containerize.deploy [--env-file .env] ec2        [--image-tag SHA]

Configuration comes from the ``.env`` written by the infrastructure project's ``terraform-output``
target (values already in the environment win, as with Nx's envFile). A missing key is an error
that names it. Exit status: 0 done, 1 the AWS side failed (build failed, endpoint rolled back,
command failed), 2 bad configuration or arguments.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from containerize import cuda

KEYS_BUILD = ("CODEBUILD_PROJECT_NAME", "REGION")
KEYS_SAGEMAKER = (
    "REGION",
    "SAGEMAKER_ENDPOINT_NAME",
    "SAGEMAKER_ENDPOINT_ROLE_ARN",
    "SAGEMAKER_INSTANCE_TYPE",
    "SAGEMAKER_INSTANCE_COUNT",
    "ECR_STEREOCRAFTER_SAGEMAKER_URL",
    "HF_TOKEN_SECRET_ARN",
)
KEYS_EC2 = ("REGION", "ECR_STEREOCRAFTER_SAGEMAKER_URL", "HF_TOKEN_SECRET_ARN")  # + EC2_INSTANCE_ID or _NAME
NAME_PREFIX = "stereocrafter"
WEIGHTS_DIR = "/opt/ml/model/weights"
FAILED_BUILD = {"FAILED", "FAULT", "STOPPED", "TIMED_OUT"}


class DeployError(Exception):
    """The AWS side failed (exit 1)."""


class ConfigError(Exception):
    """Missing or bad configuration (exit 2)."""


def read_env_file(path: Path | None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments, blank lines, ``export`` and quotes allowed) under the process
    environment, which wins."""
    values: dict[str, str] = {}
    if path is not None:
        if not path.is_file():
            raise ConfigError(
                f"env file {path} does not exist (run the infrastructure's terraform-output target)"
            )
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            match = re.match(r"^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
            if match is None:
                raise ConfigError(f"{path}:{number}: not a KEY=VALUE line")
            key, value = match.groups()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            values[key] = value
    values.update(os.environ if environ is None else environ)
    return values


def require(config: Mapping[str, str], keys: tuple[str, ...]) -> dict[str, str]:
    missing = [k for k in keys if not config.get(k)]
    if missing:
        raise ConfigError(
            f"missing configuration: {', '.join(missing)} (expected in the .env or the environment)"
        )
    return {k: config[k] for k in keys}


def git_sha(short: int = 12) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()[:short]
    except (OSError, subprocess.CalledProcessError) as err:
        raise ConfigError("cannot read the git commit; pass --image-tag / --source-version") from err


# --- build: CodeBuild ------------------------------------------------------------------------


def build(
    codebuild: Any,
    logs: Any,
    project: str,
    source_version: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    delay: float = 5.0,
    max_delay: float = 30.0,
    timeout: float = 7200.0,
    out: Any = sys.stdout,
) -> str:
    """Start the build of ``source_version``, stream its log, return the image tag it pushed."""
    tag = source_version[:12]
    started = codebuild.start_build(
        projectName=project,
        sourceVersion=source_version,
        environmentVariablesOverride=[{"name": "IMAGE_TAG", "value": tag, "type": "PLAINTEXT"}],
    )["build"]
    build_id = started["id"]
    print(f"build {build_id} started for {source_version}", file=out)
    token: str | None = None
    deadline = time.monotonic() + timeout
    while True:
        found = codebuild.batch_get_builds(ids=[build_id])["builds"]
        if not found:
            raise DeployError(f"build {build_id} is not known to CodeBuild")
        current = found[0]
        token = _stream_logs(logs, current.get("logs") or {}, token, out)
        status = current["buildStatus"]
        if status == "SUCCEEDED":
            print(f"build {build_id} SUCCEEDED: image tag {tag}", file=out)
            return tag
        if status in FAILED_BUILD:
            raise DeployError(f"build {build_id} {status}: {_failing_phase(current)}")
        if time.monotonic() > deadline:
            raise DeployError(f"build {build_id} still {status} after {timeout:.0f} s")
        sleep(delay)
        delay = min(delay * 1.5, max_delay)


def _stream_logs(logs: Any, where: Mapping[str, str], token: str | None, out: Any) -> str | None:
    group, stream = where.get("groupName"), where.get("streamName")
    if not group or not stream:
        return token  # the stream appears during PROVISIONING
    while True:
        kwargs = {"logGroupName": group, "logStreamName": stream, "startFromHead": True}
        if token:
            kwargs["nextToken"] = token
        try:
            page = logs.get_log_events(**kwargs)
        except logs.exceptions.ResourceNotFoundException:
            return token
        for event in page.get("events", []):
            print(event["message"].rstrip("\n"), file=out)
        if page.get("nextForwardToken") in (None, token):
            return token
        token = page["nextForwardToken"]


def _failing_phase(build_info: Mapping[str, Any]) -> str:
    for phase in build_info.get("phases", []):
        if phase.get("phaseStatus") not in (None, "SUCCEEDED"):
            messages = "; ".join(c.get("message", "") for c in phase.get("contexts", []) if c.get("message"))
            return f"phase {phase.get('phaseType')} {phase.get('phaseStatus')}" + (
                f": {messages}" if messages else ""
            )
    return f"phase {build_info.get('currentPhase', 'unknown')}"


# --- sagemaker -------------------------------------------------------------------------------


def ensure_image(ecr: Any, repository_uri: str, tag: str) -> str:
    """Fail fast (before any SageMaker resource exists) when ``repository_uri:tag`` was never
    pushed; returns the image's digest."""
    repository = repository_uri.split("/", 1)[1] if "/" in repository_uri else repository_uri
    try:
        images = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"]
    except (ecr.exceptions.ImageNotFoundException, ecr.exceptions.RepositoryNotFoundException) as err:
        raise DeployError(
            f"{repository_uri}:{tag} is not in ECR (run sagemaker-build first): {err}"
        ) from None
    return str(images[0]["imageDigest"])


# GPUs per SageMaker instance type (published instance specs; reference notes on instance types).
# The service runs one conversion per GPU at once (stereocrafter/serving/pool.py), so an asynchronous
# endpoint should send each instance that many requests at once. Types not listed count as 1
# unless --max-concurrent-invocations says otherwise.
GPUS_PER_INSTANCE = {
    **{f"ml.g4dn.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g4dn.12xlarge": 4,
    **{f"ml.g5.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g5.12xlarge": 4,
    "ml.g5.24xlarge": 4,
    "ml.g5.48xlarge": 8,
    **{f"ml.g6.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g6.12xlarge": 4,
    "ml.g6.24xlarge": 4,
    "ml.g6.48xlarge": 8,
    **{f"ml.g6e.{size}": 1 for size in ("xlarge", "2xlarge", "4xlarge", "8xlarge", "16xlarge")},
    "ml.g6e.12xlarge": 4,
    "ml.g6e.24xlarge": 4,
    "ml.g6e.48xlarge": 8,
    "ml.p4d.24xlarge": 8,
    "ml.p4de.24xlarge": 8,
    "ml.p5.48xlarge": 8,
}


def gpus_of(instance_type: str) -> int:
    return GPUS_PER_INSTANCE.get(instance_type, 1)


@dataclass(frozen=True)
class SageMakerTarget:
    endpoint: str
    role_arn: str
    instance_type: str
    instance_count: int
    image: str
    hf_token_arn: str
    startup_timeout: int = 1800  # weight download + load
    volume_gb: int | None = None
    async_output: str | None = None  # s3://... enables asynchronous inference
    async_failure: str | None = None
    success_topic: str | None = None
    error_topic: str | None = None
    autoscale_max: int = 0  # async only: scale on the backlog up to this many instances
    max_concurrent: int | None = None  # async requests per instance at once (default: its GPUs)
    presets: str | None = None  # STEREOCRAFTER_PRESETS of the endpoint (default: every preset)
    ami: str = cuda.DEFAULT_AMI  # InferenceAmiVersion: its NVIDIA driver must run the image's CUDA


def resource_name(tag: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{NAME_PREFIX}-{re.sub(r'[^a-zA-Z0-9]', '', tag)[:7]}-{stamp}"[:63]


def deploy_sagemaker(
    sm: Any,
    target: SageMakerTarget,
    tag: str,
    *,
    autoscaling: Any = None,
    keep: int = 2,
    wait_delay: int = 30,
    wait_attempts: int = 120,
    out: Any = sys.stdout,
) -> str:
    """New model + endpoint config, then create or update the endpoint and check it really moved.
    Before anything is created: the AMI's driver must run the image's CUDA on that instance type
    (``containerize.cuda.check_fit``), else ``ConfigError``."""
    try:
        ami = cuda.check_fit(cuda.image_cuda(), target.ami, target.instance_type)
    except cuda.MisfitError as err:
        raise ConfigError(str(err)) from None
    name = resource_name(tag)
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=target.role_arn,
        PrimaryContainer={
            "Image": target.image,
            "Environment": {
                "HF_TOKEN_ARN": target.hf_token_arn,
                "WEIGHTS_DIR": WEIGHTS_DIR,
                "BENTOML_PORT": "8080",
                **({"STEREOCRAFTER_PRESETS": target.presets} if target.presets else {}),
            },
        },
    )
    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": name,
        "InstanceType": target.instance_type,
        "InitialInstanceCount": target.instance_count,
        "ContainerStartupHealthCheckTimeoutInSeconds": target.startup_timeout,
        "InferenceAmiVersion": ami.name,  # never the default driver: 470 cannot start CUDA 13
    }
    if target.volume_gb:
        variant["VolumeSizeInGB"] = target.volume_gb
    config: dict[str, Any] = {"EndpointConfigName": name, "ProductionVariants": [variant]}
    if target.async_output:
        output: dict[str, Any] = {"S3OutputPath": target.async_output}
        if target.async_failure:
            output["S3FailurePath"] = target.async_failure
        topics = {
            k: v for k, v in (("SuccessTopic", target.success_topic), ("ErrorTopic", target.error_topic)) if v
        }
        if topics:
            output["NotificationConfig"] = topics
        # One video job per GPU at a time: the service runs one conversion slot per GPU.
        concurrent = target.max_concurrent or gpus_of(target.instance_type)
        config["AsyncInferenceConfig"] = {
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": concurrent},
            "OutputConfig": output,
        }
    sm.create_endpoint_config(**config)
    print(
        f"created model and endpoint config {name} ({target.image}; AMI {ami.name}, NVIDIA driver "
        f"{ami.driver}, CUDA {ami.cuda[0]}.{ami.cuda[1]})",
        file=out,
    )

    if _endpoint_exists(sm, target.endpoint):
        sm.update_endpoint(EndpointName=target.endpoint, EndpointConfigName=name)
        print(f"updating endpoint {target.endpoint}", file=out)
    else:
        sm.create_endpoint(EndpointName=target.endpoint, EndpointConfigName=name)
        print(f"creating endpoint {target.endpoint}", file=out)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=target.endpoint, WaiterConfig={"Delay": wait_delay, "MaxAttempts": wait_attempts}
    )
    # The waiter also succeeds after a failed update that rolled back to the old config.
    described = sm.describe_endpoint(EndpointName=target.endpoint)
    if described.get("EndpointConfigName") != name or described.get("FailureReason"):
        reason = described.get("FailureReason") or "the endpoint kept its previous configuration"
        raise DeployError(f"endpoint {target.endpoint} did not take {name}: {reason}")
    print(f"endpoint {target.endpoint} InService on {name}", file=out)
    if target.async_output and target.autoscale_max > 0 and autoscaling is not None:
        configure_backlog_autoscaling(autoscaling, target.endpoint, target.autoscale_max)
        print(f"backlog autoscaling 0..{target.autoscale_max} instances", file=out)
    prune(sm, keep=keep, in_use=name, out=out)
    return name


def _endpoint_exists(sm: Any, endpoint: str) -> bool:
    try:
        sm.describe_endpoint(EndpointName=endpoint)
    except sm.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") == "ValidationException":
            return False  # "Could not find endpoint"
        raise
    return True


def configure_backlog_autoscaling(autoscaling: Any, endpoint: str, max_instances: int) -> None:
    """Scale the async endpoint's variant on ApproximateBacklogSizePerInstance, down to zero."""
    resource = f"endpoint/{endpoint}/variant/AllTraffic"
    autoscaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        MinCapacity=0,
        MaxCapacity=max_instances,
    )
    autoscaling.put_scaling_policy(
        PolicyName=f"{endpoint}-backlog",
        ServiceNamespace="sagemaker",
        ResourceId=resource,
        ScalableDimension="sagemaker:variant:DesiredInstanceCount",
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 1.0,
            "CustomizedMetricSpecification": {
                "MetricName": "ApproximateBacklogSizePerInstance",
                "Namespace": "AWS/SageMaker",
                "Dimensions": [{"Name": "EndpointName", "Value": endpoint}],
                "Statistic": "Average",
            },
            "ScaleInCooldown": 600,
            "ScaleOutCooldown": 120,
        },
    )


def prune(sm: Any, *, keep: int, in_use: str, out: Any = sys.stdout) -> list[str]:
    """Delete this project's endpoint configs and models beyond the newest ``keep`` (never
    ``in_use``). moto and AWS disagree on list order: sort by CreationTime here."""
    configs = _all(sm.list_endpoint_configs, "EndpointConfigs", NameContains=f"{NAME_PREFIX}-")
    models = _all(sm.list_models, "Models", NameContains=f"{NAME_PREFIX}-")
    deleted: list[str] = []
    for items, name_key in ((configs, "EndpointConfigName"), (models, "ModelName")):
        ordered = sorted(items, key=lambda item: item["CreationTime"], reverse=True)
        for item in ordered[keep:]:
            if item[name_key] == in_use:
                continue
            if name_key == "ModelName":
                sm.delete_model(ModelName=item[name_key])
            else:
                sm.delete_endpoint_config(EndpointConfigName=item[name_key])
            deleted.append(item[name_key])
    if deleted:
        print(f"pruned {len(deleted)} old models/endpoint configs", file=out)
    return deleted


def _all(call: Callable[..., Any], key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return items


# --- ec2 via SSM -----------------------------------------------------------------------------


def ec2_script(
    image: str,
    region: str,
    hf_token_arn: str,
    port: int = 8080,
    ready_timeout: int = 1800,
    presets: str | None = None,
) -> list[str]:
    """The shell run on the GPU host: ECR login, pull, replace the container, wait for /ping."""
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
        "mkdir -p /opt/stereocrafter/serving/weights",
        f"docker run -d --name stereocrafter --gpus all -p {port}:8080 --restart unless-stopped "
        f"-e HF_TOKEN_ARN={hf_token_arn} -e AWS_REGION={region} -e AWS_DEFAULT_REGION={region} "
        + (f"-e STEREOCRAFTER_PRESETS={presets} " if presets else "")
        + f"-e WEIGHTS_DIR={WEIGHTS_DIR} -v /opt/stereocrafter/serving/weights:{WEIGHTS_DIR} {image} serve",
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


def served_presets(args: argparse.Namespace, config: Mapping[str, str]) -> str | None:
    """The endpoint's ``STEREOCRAFTER_PRESETS``: ``--presets``, else the key in the .env or the
    environment, else None (every preset); checked against the presets the image knows."""
    from stereocrafter.catalog import parse_presets

    raw = args.presets or config.get("STEREOCRAFTER_PRESETS") or ""
    if not raw.strip():
        return None
    try:
        return ",".join(parse_presets(raw))
    except ValueError as err:
        raise ConfigError(f"STEREOCRAFTER_PRESETS: {err}") from None


# --- command line ----------------------------------------------------------------------------


def main(argv: list[str] | None = None, *, clients: Callable[[str, str], Any] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m containerize.deploy", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--env-file", type=Path, help="the .env written by terraform-output")
    commands = parser.add_subparsers(dest="command", required=True)
    b = commands.add_parser("build", help="CodeBuild: build the image for this commit and push it to ECR")
    b.add_argument("--source-version", help="commit SHA (default: git HEAD)")
    s = commands.add_parser("sagemaker", help="new model + endpoint config, then create/update the endpoint")
    s.add_argument("--image-tag", help="image tag (default: the git SHA the build pushed)")
    s.add_argument("--async", dest="async_output", metavar="S3_OUTPUT_PATH", help="asynchronous inference")
    s.add_argument("--async-failure-path")
    s.add_argument("--success-topic")
    s.add_argument("--error-topic")
    s.add_argument("--autoscale-max", type=int, default=0)
    s.add_argument(
        "--max-concurrent-invocations",
        type=int,
        help="async requests per instance at once (default: its GPUs)",
    )
    s.add_argument(
        "--startup-timeout", type=int, default=1800, help="seconds for weight download + load (60-3600)"
    )
    presets_help = "presets the endpoint serves, e.g. turbo (default: .env STEREOCRAFTER_PRESETS, else all)"
    s.add_argument("--presets", help=presets_help)
    s.add_argument("--volume-gb", type=int, help="EBS volume for the weights (1-512)")
    s.add_argument(
        "--ami",
        help=f"InferenceAmiVersion (default: .env SAGEMAKER_INFERENCE_AMI, else {cuda.DEFAULT_AMI})",
    )
    s.add_argument("--keep", type=int, default=2, help="old models/configs to keep for rollback")
    s.add_argument("--wait-delay", type=int, default=30)
    s.add_argument("--wait-attempts", type=int, default=120)
    e = commands.add_parser("ec2", help="roll the GPU EC2 host to the new image through SSM")
    e.add_argument("--image-tag")
    e.add_argument("--presets", help=presets_help)
    args = parser.parse_args(argv)
    try:
        config = read_env_file(args.env_file)
        make = clients or (lambda name, region: __import__("boto3").client(name, region_name=region))
        if args.command == "build":
            c = require(config, KEYS_BUILD)
            build(
                make("codebuild", c["REGION"]),
                make("logs", c["REGION"]),
                c["CODEBUILD_PROJECT_NAME"],
                args.source_version or git_sha(40),
            )
        elif args.command == "sagemaker":
            c = require(config, KEYS_SAGEMAKER)
            tag = args.image_tag or git_sha()
            try:
                count = int(c["SAGEMAKER_INSTANCE_COUNT"])
            except ValueError:
                raise ConfigError(
                    f"SAGEMAKER_INSTANCE_COUNT must be an integer, got {c['SAGEMAKER_INSTANCE_COUNT']!r}"
                ) from None
            if not 60 <= args.startup_timeout <= 3600:
                raise ConfigError(f"--startup-timeout must be in 60..3600, got {args.startup_timeout}")
            target = SageMakerTarget(
                endpoint=c["SAGEMAKER_ENDPOINT_NAME"],
                role_arn=c["SAGEMAKER_ENDPOINT_ROLE_ARN"],
                instance_type=c["SAGEMAKER_INSTANCE_TYPE"],
                instance_count=count,
                image=f"{c['ECR_STEREOCRAFTER_SAGEMAKER_URL']}:{tag}",
                hf_token_arn=c["HF_TOKEN_SECRET_ARN"],
                startup_timeout=args.startup_timeout,
                volume_gb=args.volume_gb,
                async_output=args.async_output,
                async_failure=args.async_failure_path,
                success_topic=args.success_topic,
                error_topic=args.error_topic,
                autoscale_max=args.autoscale_max,
                max_concurrent=args.max_concurrent_invocations,
                presets=served_presets(args, config),
                ami=args.ami or config.get("SAGEMAKER_INFERENCE_AMI") or cuda.DEFAULT_AMI,
            )
            ensure_image(make("ecr", c["REGION"]), c["ECR_STEREOCRAFTER_SAGEMAKER_URL"], tag)
            deploy_sagemaker(
                make("sagemaker", c["REGION"]),
                target,
                tag,
                autoscaling=make("application-autoscaling", c["REGION"]),
                keep=args.keep,
                wait_delay=args.wait_delay,
                wait_attempts=args.wait_attempts,
            )
        else:
            c = require(config, KEYS_EC2)
            if not (config.get("EC2_INSTANCE_ID") or config.get("EC2_INSTANCE_NAME")):
                raise ConfigError("missing configuration: EC2_INSTANCE_ID or EC2_INSTANCE_NAME")
            tag = args.image_tag or git_sha()
            instance = find_instance(
                make("ec2", c["REGION"]), config.get("EC2_INSTANCE_ID"), config.get("EC2_INSTANCE_NAME")
            )
            image = f"{c['ECR_STEREOCRAFTER_SAGEMAKER_URL']}:{tag}"
            ensure_image(make("ecr", c["REGION"]), c["ECR_STEREOCRAFTER_SAGEMAKER_URL"], tag)
            script = ec2_script(
                image, c["REGION"], c["HF_TOKEN_SECRET_ARN"], presets=served_presets(args, config)
            )
            deploy_ec2(make("ssm", c["REGION"]), instance, script)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except DeployError as err:
        print(f"failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
