"""``containerize.codebuild``: the build polled and its log streamed, a failed phase named (Stubber and
moto's logs), the buildspec."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from botocore.stub import Stubber

from containerize.aws import DeployError
from containerize.codebuild import build
from tests.containerize.helpers import ROOT, offline


def _build(status: str, phases: list | None = None, logs: bool = True) -> dict:
    info: dict = {
        "id": "stereocrafter-build:42",
        "buildStatus": status,
        "currentPhase": "BUILD",
        "phases": phases or [],
    }
    if logs:
        info["logs"] = {"groupName": "/aws/codebuild/stereocrafter-build", "streamName": "42"}
    return info


def test_build_polls_streams_logs_and_succeeds() -> None:
    codebuild, logs = offline("codebuild"), offline("logs")
    out = io.StringIO()
    with Stubber(codebuild) as cb, Stubber(logs) as lg:
        cb.add_response(
            "start_build",
            {"build": _build("IN_PROGRESS", logs=False)},
            {
                "projectName": "stereocrafter-build",
                "sourceVersion": "f" * 40,
                "environmentVariablesOverride": [
                    {"name": "IMAGE_TAG", "value": "f" * 12, "type": "PLAINTEXT"}
                ],
            },
        )
        cb.add_response(
            "batch_get_builds", {"builds": [_build("IN_PROGRESS", logs=False)]}
        )  # stream not there yet
        cb.add_response("batch_get_builds", {"builds": [_build("IN_PROGRESS")]})
        lg.add_response(
            "get_log_events", {"events": [{"message": "bentoml build ...\n"}], "nextForwardToken": "t1"}
        )
        lg.add_response("get_log_events", {"events": [], "nextForwardToken": "t1"})
        cb.add_response("batch_get_builds", {"builds": [_build("SUCCEEDED")]})
        lg.add_response(
            "get_log_events", {"events": [{"message": "pushed :latest\n"}], "nextForwardToken": "t2"}
        )
        lg.add_response("get_log_events", {"events": [], "nextForwardToken": "t2"})
        sleeps: list[float] = []
        tag = build(codebuild, logs, "stereocrafter-build", "f" * 40, sleep=sleeps.append, out=out)
    assert tag == "f" * 12
    assert "bentoml build ..." in out.getvalue() and "pushed :latest" in out.getvalue()
    assert sleeps == [5.0, 7.5]  # backoff


@pytest.mark.parametrize("status", ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"])
def test_build_failure_names_the_phase(status: str) -> None:
    codebuild, logs = offline("codebuild"), offline("logs")
    phases = [
        {"phaseType": "INSTALL", "phaseStatus": "SUCCEEDED"},
        {
            "phaseType": "BUILD",
            "phaseStatus": "FAILED",
            "contexts": [
                {"statusCode": "COMMAND_EXECUTION_ERROR", "message": "bentoml containerize: exit status 1"}
            ],
        },
    ]
    with Stubber(codebuild) as cb, Stubber(logs) as lg:
        cb.add_response("start_build", {"build": _build("IN_PROGRESS", logs=False)})
        cb.add_response("batch_get_builds", {"builds": [_build(status, phases)]})
        lg.add_client_error("get_log_events", service_error_code="ResourceNotFoundException")
        with pytest.raises(
            DeployError, match=f"{status}: phase BUILD FAILED: bentoml containerize: exit status 1"
        ):
            build(codebuild, logs, "p", "a" * 40, sleep=lambda s: None, out=io.StringIO())


# --- sagemaker -------------------------------------------------------------------------------


def test_buildspec_builds_containerizes_and_pushes_both_tags() -> None:
    import yaml

    spec = yaml.safe_load((ROOT / "containerize" / "buildspec.yml").read_text())
    assert spec["version"] == 0.2
    commands = {phase: "\n".join(spec["phases"][phase]["commands"]) for phase in spec["phases"]}
    assert "docker login --username AWS --password-stdin" in commands["pre_build"]
    assert 'bentoml build --version "$IMAGE_TAG"' in commands["build"]
    assert 'bentoml containerize "$BENTO_NAME:$IMAGE_TAG"' in commands["build"]
    assert "cache-from" in commands["build"]
    assert 'docker push "$IMAGE_REPO:$IMAGE_TAG"' in commands["post_build"]
    assert 'docker push "$IMAGE_REPO:latest"' in commands["post_build"]
    assert (
        spec["env"]["variables"]["BENTO_NAME"]
        == yaml.safe_load((ROOT / "bentofile.yaml").read_text())["name"]
    )
    # The packages it installs are pinned in requirements/runtime.txt.
    runtime = (ROOT / "requirements" / "runtime.txt").read_text()
    for name in ("bentoml", "fastapi", "pydantic", "pydantic_core", "starlette", "anyio"):
        assert f"\n{name}==" in runtime, name


def test_build_log_streaming_against_moto_logs(aws) -> None:
    from containerize.codebuild import _stream_logs

    logs = aws("logs")
    logs.create_log_group(logGroupName="/aws/codebuild/p")
    where = {"groupName": "/aws/codebuild/p", "streamName": "42"}
    out = io.StringIO()
    assert _stream_logs(logs, where, None, out) is None  # the stream does not exist yet
    logs.create_log_stream(logGroupName="/aws/codebuild/p", logStreamName="42")
    now = int(datetime.now(UTC).timestamp() * 1000)
    logs.put_log_events(
        logGroupName="/aws/codebuild/p",
        logStreamName="42",
        logEvents=[{"timestamp": now, "message": "[Container] phase INSTALL"}],
    )
    token = _stream_logs(logs, where, None, out)
    logs.put_log_events(
        logGroupName="/aws/codebuild/p",
        logStreamName="42",
        logEvents=[{"timestamp": now + 1, "message": "bentoml build done"}],
    )
    _stream_logs(logs, where, token, out)
    assert out.getvalue().splitlines() == ["[Container] phase INSTALL", "bentoml build done"]
