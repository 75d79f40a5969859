"""What the deploy targets' tests share: the configuration of a test account, an image in ECR, an
offline client for botocore's Stubber and a SageMaker target."""

from __future__ import annotations

import json
from pathlib import Path

import boto3

from containerize.sagemaker import SageMakerTarget

ROOT = Path(__file__).resolve().parents[2]
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
