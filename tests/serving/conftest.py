"""What the serving family's tests share: moto's S3 with the bucket ``videos``."""

from __future__ import annotations

import pytest


@pytest.fixture
def s3(aws):  # type: ignore[no-untyped-def]
    client = aws("s3")
    client.create_bucket(Bucket="videos")
    return client
