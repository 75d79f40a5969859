"""An S3 client with fake credentials and the service's client config, for botocore's Stubber and
servers that stand in for S3 (a proxy, a hung socket)."""

from __future__ import annotations

from stereocrafter.serving.storage import client_config


def offline_client(endpoint: str | None = None, **config: object):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="a",
        aws_secret_access_key="b",
        config=client_config(**config),  # type: ignore[arg-type]
    )
