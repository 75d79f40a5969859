"""``sagemaker-deploy``: a new model and endpoint config for the image's tag, the endpoint created or
updated and waited for, backlog autoscaling for an asynchronous endpoint, older resources pruned."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from containerize import cuda
from containerize.aws import (
    NAME_PREFIX,
    WEIGHTS_DIR,
    ConfigError,
    DeployError,
    _all,
    ensure_image,
    git_sha,
    require,
    served_presets,
)
from stereocrafter.catalog import parse_presets
from stereocrafter.settings import Env

KEYS_SAGEMAKER = (
    "REGION",
    "SAGEMAKER_ENDPOINT_NAME",
    "SAGEMAKER_ENDPOINT_ROLE_ARN",
    "SAGEMAKER_INSTANCE_TYPE",
    "SAGEMAKER_INSTANCE_COUNT",
    "ECR_STEREOCRAFTER_SAGEMAKER_URL",
)
# Where SageMaker places uncompressed model data (ModelDataSource): the WEIGHTS_DIR of an endpoint
# deployed from an S3 mirror of the weights (weights-mirror).
MODEL_DATA_DIR = "/opt/ml/model"


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
    "ml.p5e.48xlarge": 8,  # 8 H200
    "ml.p5en.48xlarge": 8,  # 8 H200, faster networking
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
    weights_s3: str | None = None  # s3://bucket/prefix/ of a weights-mirror: model data, no download


def resource_name(tag: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return f"{NAME_PREFIX}-{re.sub(r'[^a-zA-Z0-9]', '', tag)[:7]}-{stamp}"[:63]


def create_model(
    sm: Any,
    name: str,
    *,
    image: str,
    role_arn: str,
    hf_token_arn: str,
    presets: str | None,
    extra_env: dict[str, str] | None = None,
    weights_s3: str | None = None,
) -> None:
    """The SageMaker model of the image (an endpoint's or a transform job's), port 8080, the presets
    it serves (and ``extra_env``). Its weights: from the token's secret at start-up, or, with
    ``weights_s3`` (a weights-mirror prefix), placed by SageMaker under /opt/ml/model as uncompressed
    model data before the container starts: no token, no internet (``HF_HUB_OFFLINE``)."""
    container: dict[str, Any] = {"Image": image}
    if weights_s3:
        source = {"S3Uri": weights_s3, "S3DataType": "S3Prefix", "CompressionType": "None"}
        container["ModelDataSource"] = {"S3DataSource": source}
        weights = {Env.WEIGHTS_DIR: MODEL_DATA_DIR, Env.HF_HUB_OFFLINE: "1"}
    else:
        weights = {Env.HF_TOKEN_ARN: hf_token_arn, Env.WEIGHTS_DIR: WEIGHTS_DIR}
    container["Environment"] = {
        **weights,
        "BENTOML_PORT": "8080",
        **({Env.PRESETS: presets} if presets else {}),
        **(extra_env or {}),
    }
    sm.create_model(ModelName=name, ExecutionRoleArn=role_arn, PrimaryContainer=container)


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
    create_model(sm, name, image=target.image, role_arn=target.role_arn, hf_token_arn=target.hf_token_arn,
                 presets=target.presets, weights_s3=target.weights_s3)  # fmt: skip
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
    if target.weights_s3:  # the time to place the mirror's files under /opt/ml/model (60-3600 s)
        variant["ModelDataDownloadTimeoutInSeconds"] = target.startup_timeout
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


def run(args: argparse.Namespace, config: Mapping[str, str], make: Callable[[str, str], Any]) -> None:
    """The ``sagemaker`` command: the target from the configuration and the arguments, the image
    checked in ECR before anything is created, then ``deploy_sagemaker``."""
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
        hf_token_arn=config.get("HF_TOKEN_SECRET_ARN", ""),
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
        weights_s3=args.weights_s3,
    )
    if target.weights_s3:
        from containerize.weights_mirror import check_mirror, prefix_of

        bucket, prefix = prefix_of(target.weights_s3)
        mirror = f"s3://{bucket}/{prefix}"
        target = replace(target, weights_s3=mirror)
        rows = check_mirror(make("s3", c["REGION"]), mirror, parse_presets(target.presets or ""))
        print(f"weights from {target.weights_s3}: {len(rows)} files in its lock, every file the presets need "
              "there; the endpoint needs no token and no internet")  # fmt: skip
    elif not config.get("HF_TOKEN_SECRET_ARN"):
        raise ConfigError(
            "missing configuration: HF_TOKEN_SECRET_ARN (or deploy from a mirror: --weights-s3)"
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
