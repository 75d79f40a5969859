"""``weights-mirror``: the weights manifest's files, at their pinned commits, copied from Hugging Face to
an S3 prefix you name, with the lock (every file's commit, size and SHA-256) beside them, so that an
endpoint in a VPC without internet starts from S3 (``sagemaker-deploy --weights-s3``, ``ec2
--weights-s3``). Run once, from a machine with internet and the token.

The prefix holds exactly a ``WEIGHTS_DIR``: ``<repo id>/<path>`` for every file and
``weights.lock.json`` at its root. SageMaker places such a prefix (``ModelDataSource``, ``S3Prefix``,
``CompressionType=None``) under ``/opt/ml/model`` before the container starts; the service then
verifies every file against the published manifest and the lock, as after a download.

Every file is verified after the download and before the upload (a file that differs from the
manifest is never mirrored); each object carries its SHA-256 in its metadata, so a second run uploads
only what changed. Objects are written by boto3's transfer manager (multipart for large files).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from containerize.aws import ConfigError, DeployError, served_presets
from stereocrafter.catalog import models_with_files, needs_token
from stereocrafter.locations import split_s3_uri
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.weights.integrity import LOCK_NAME, expected_rows, read_manifest, verify_models
from stereocrafter.weights.manifest import WeightFile, from_json, to_json

SHA_KEY = "sha256"  # object metadata: the file's digest (x-amz-meta-sha256)


def prefix_of(uri: str) -> tuple[str, str]:
    """(bucket, key prefix ending in "/") of an ``s3://bucket/prefix/`` URI; ``ConfigError`` else."""
    probe = uri.rstrip("/") + "/x"  # the rules of an object key, for the prefix
    try:
        bucket, key = split_s3_uri(probe)
    except ValueError as err:
        raise ConfigError(f"weights prefix: {str(err).replace(probe, uri)}") from None
    key = key[: -len("x")].strip("/")
    if not key:
        raise ConfigError(f"weights prefix {uri}: name a prefix under the bucket (s3://bucket/weights/)")
    return bucket, key + "/"


def mirror_weights(
    s3: Any,
    uri: str,
    token: str | None,
    *,
    presets: Sequence[str] = PRESET_NAMES,
    manifest: Sequence[WeightFile] | None = None,
    staging: Path | None = None,
    endpoint: str | None = None,
    out: Any = sys.stdout,
) -> list[WeightFile]:
    """Download, verify, upload (see the module); returns the rows written to the mirror's lock."""
    from stereocrafter.serving.weights import download_weights

    bucket, prefix = prefix_of(uri)
    models = models_with_files(presets)
    with tempfile.TemporaryDirectory(prefix="weights-mirror-") as temp:
        root = staging or Path(temp)
        failed = download_weights(root, token, presets=presets, manifest=manifest, endpoint=endpoint)
        if failed:
            raise DeployError("download failed: " + "; ".join(f"{m}: {why}" for m, why in failed.items()))
        checks = verify_models(root, models, manifest)
        refused = [f"{m}: {c.message}" for m, c in checks.items() if c.state != "ok"]
        if refused:
            raise DeployError("not mirrored, the files differ from the manifest: " + "; ".join(refused))
        rows = expected_rows(root, models, manifest)  # every commit and digest known now
        uploaded = 0
        for row in rows:
            key = prefix + row.key
            if _has(s3, bucket, key, row):
                continue
            s3.upload_file(
                str(root / row.key), bucket, key, ExtraArgs={"Metadata": {SHA_KEY: str(row.sha256)}}
            )
            uploaded += 1
            print(f"uploaded s3://{bucket}/{key} ({row.size:,} bytes, sha256 {row.sha256})", file=out)
        s3.put_object(Bucket=bucket, Key=prefix + LOCK_NAME, Body=to_json(rows).encode(),
                      ContentType="application/json")  # fmt: skip
    total = sum(row.size or 0 for row in rows)
    print(f"mirrored {len(rows)} files ({total / 1e9:.2f} GB; {uploaded} uploaded, {len(rows) - uploaded} "
          f"already there) for {', '.join(presets)} to s3://{bucket}/{prefix}, with {LOCK_NAME}",
          file=out)  # fmt: skip
    return rows


def _has(s3: Any, bucket: str, key: str, row: WeightFile) -> bool:
    """The object is there with this file's size and digest."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError:
        return False
    return bool(head.get("ContentLength") == row.size and head.get("Metadata", {}).get(SHA_KEY) == row.sha256)


def check_mirror(s3: Any, uri: str, presets: Sequence[str]) -> tuple[WeightFile, ...]:
    """What ``sagemaker-deploy --weights-s3`` checks before it creates anything: the lock is there and
    names every file the served presets need, each object is there with its size, and no key would
    break SageMaker's placement (a "folder" key ending in "/")."""
    bucket, prefix = prefix_of(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=prefix + LOCK_NAME)["Body"].read()
    except s3.exceptions.ClientError as err:
        raise ConfigError(
            f"s3://{bucket}/{prefix}{LOCK_NAME} cannot be read ({err.response['Error'].get('Code')}): "
            "run weights-mirror to that prefix first"
        ) from None
    try:
        rows = from_json(body.decode("utf-8", "replace"), f"s3://{bucket}/{prefix}{LOCK_NAME}")
    except ValueError as err:
        raise ConfigError(str(err)) from None
    objects: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.update({item["Key"][len(prefix) :]: item["Size"] for item in page.get("Contents", [])})
    folders = [key for key in objects if key.endswith("/")]
    if folders:
        raise ConfigError(
            f"s3://{bucket}/{prefix}{folders[0]} is a folder key: SageMaker cannot place it; delete it"
        )
    needed = {row.key: row for row in expected_rows(Path("/nonexistent"), models_with_files(presets), rows)}
    locked = {row.key: row for row in rows}
    lacking = [key for key in needed if key not in locked or key not in objects]
    if lacking:
        raise ConfigError(f"the mirror lacks {', '.join(lacking[:4])} for the presets {', '.join(presets)}: "
                          "run weights-mirror with them")  # fmt: skip
    wrong = [key for key in needed if locked[key].size is not None and objects[key] != locked[key].size]
    if wrong:
        raise ConfigError(f"s3://{bucket}/{prefix}{wrong[0]} is {objects[wrong[0]]} bytes; the lock says "
                          f"{locked[wrong[0]].size}")  # fmt: skip
    return rows


def run(args: argparse.Namespace, config: Mapping[str, str], make: Callable[[str, str], Any]) -> None:
    """The ``weights-mirror`` command: the token from the secret (HF_TOKEN_SECRET_ARN) or HF_TOKEN,
    the presets' files downloaded and verified, uploaded to ``--to``."""
    from stereocrafter.catalog import parse_presets
    from stereocrafter.serving.weights import read_hf_token

    region = config.get("REGION") or config.get("AWS_REGION") or "us-east-1"
    presets = parse_presets(served_presets(args, config) or "")
    token = config.get("HF_TOKEN") or None
    if token is None and config.get("HF_TOKEN_SECRET_ARN"):
        token = read_hf_token(config["HF_TOKEN_SECRET_ARN"], make("secretsmanager", region))
    if token is None and needs_token(presets):
        raise ConfigError("the presets need the gated SVD repo: set HF_TOKEN_SECRET_ARN (or HF_TOKEN)")
    try:
        manifest = read_manifest(args.manifest)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    mirror_weights(
        make("s3", region), args.to, token, presets=presets, manifest=manifest, staging=args.staging
    )
