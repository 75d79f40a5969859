"""What the deploy targets share: the configuration from the infrastructure's ``.env`` (values in the
environment win, as with Nx's envFile), the two errors and their exit statuses, the commit's SHA
(the image's tag), the check that an image is in ECR, AWS pagination, and the presets an endpoint
serves (``STEREOCRAFTER_PRESETS``)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stereocrafter.settings import DEFAULT_WEIGHTS_DIR, Env

NAME_PREFIX = "stereocrafter"
WEIGHTS_DIR = DEFAULT_WEIGHTS_DIR  # where the container keeps the weights (settings' default)


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


def _all(call: Callable[..., Any], key: str, **kwargs: Any) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        items += page.get(key, [])
        token = page.get("NextToken")
        if not token:
            return items


def served_presets(args: argparse.Namespace, config: Mapping[str, str]) -> str | None:
    """The endpoint's ``STEREOCRAFTER_PRESETS``: ``--presets``, else the key in the .env or the
    environment, else None (every preset); checked against the presets the image knows."""
    from stereocrafter.catalog import parse_presets

    raw = args.presets or config.get(Env.PRESETS) or ""
    if not raw.strip():
        return None
    try:
        return ",".join(parse_presets(raw))
    except ValueError as err:
        raise ConfigError(f"STEREOCRAFTER_PRESETS: {err}") from None
