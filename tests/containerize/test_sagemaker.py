"""``containerize.sagemaker``: model, endpoint config and endpoint in moto, the AMI sent, misfits
refused, asynchronous inference, a rolled-back update (Stubber), pruning, the GPU table."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from botocore.stub import ANY, Stubber

from containerize.aws import ConfigError, DeployError
from containerize.sagemaker import deploy_sagemaker, prune, resource_name
from tests.containerize.helpers import IMAGE, ROLE, SECRET, offline, target


def test_resource_names_are_valid_and_unique() -> None:
    a = resource_name("0123456789abcdef", datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC))
    b = resource_name("0123456789abcdef", datetime(2026, 11, 27, 12, 0, 1, tzinfo=UTC))
    assert a == "stereocrafter-0123456-20261127-120000" and a != b and len(a) <= 63


# --- build -----------------------------------------------------------------------------------


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
    from containerize.sagemaker import gpus_of

    big = ("ml.g6e.12xlarge", "ml.g6e.48xlarge", "ml.p4d.24xlarge", "ml.p5.48xlarge")
    assert [gpus_of(t) for t in big] == [4, 8, 8, 8]
    assert gpus_of("ml.g5.2xlarge") == 1 and gpus_of("ml.unknown.9xlarge") == 1
    assert gpus_of("ml.p5e.48xlarge") == gpus_of("ml.p5en.48xlarge") == 8


def test_every_supported_family_has_its_gpu_counts() -> None:
    """A family the AMI check accepts but the table lacks would run one request at a time on an
    instance of eight GPUs (batch concurrency and the endpoint's per-instance invocations)."""
    from containerize.cuda import SUPPORTED_FAMILIES
    from containerize.sagemaker import GPUS_PER_INSTANCE

    listed = {name.split(".")[1] for name in GPUS_PER_INSTANCE}
    assert set(SUPPORTED_FAMILIES) - listed == set()
    assert all(count >= 1 for count in GPUS_PER_INSTANCE.values())
