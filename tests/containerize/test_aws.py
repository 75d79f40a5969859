"""``containerize.aws``: the .env and missing keys, the image checked in ECR (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from containerize.aws import ConfigError, DeployError, ensure_image, read_env_file, require
from tests.containerize.helpers import push_image


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


def test_image_must_exist_in_ecr(aws) -> None:
    ecr = aws("ecr")
    uri = ecr.create_repository(repositoryName="stereocrafter-sagemaker")["repository"]["repositoryUri"]
    push_image(ecr, "abc1234")
    assert ensure_image(ecr, uri, "abc1234").startswith("sha256:")
    with pytest.raises(DeployError, match="is not in ECR"):
        ensure_image(ecr, uri, "0000000")
    with pytest.raises(DeployError, match="is not in ECR"):
        ensure_image(ecr, "123456789012.dkr.ecr.us-east-1.amazonaws.com/missing-repo", "abc1234")
