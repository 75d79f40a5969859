"""``sagemaker-build``: CodeBuild builds the image for this commit and pushes it to ECR; the build's
log is streamed, and a failed phase is named."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from containerize.aws import DeployError, git_sha, require

KEYS_BUILD = ("CODEBUILD_PROJECT_NAME", "REGION")
FAILED_BUILD = {"FAILED", "FAULT", "STOPPED", "TIMED_OUT"}


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


def run(args: argparse.Namespace, config: Mapping[str, str], make: Callable[[str, str], Any]) -> None:
    """The ``build`` command: the image of ``--source-version`` (default: git HEAD)."""
    c = require(config, KEYS_BUILD)
    build(
        make("codebuild", c["REGION"]),
        make("logs", c["REGION"]),
        c["CODEBUILD_PROJECT_NAME"],
        args.source_version or git_sha(40),
    )
