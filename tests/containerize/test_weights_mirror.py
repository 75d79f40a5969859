"""``weights-mirror`` and ``--weights-s3``: the pinned files verified and copied from a Hub (the local
Hub-compatible server over the tiny weights) to moto's S3 with the lock beside them; the SageMaker
model created with that prefix as uncompressed model data (read back from moto); what the deploy
refuses before it creates anything; the EC2 host's sync; and (slow tier) a real service starting
from a WEIGHTS_DIR filled from the mirror, as SageMaker fills /opt/ml/model, with no token and
HF_HUB_OFFLINE=1, serving every preset."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import boto3
import pytest

from containerize.aws import ConfigError, DeployError
from containerize.ec2 import ec2_script
from containerize.weights_mirror import SHA_KEY, check_mirror, mirror_weights
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.testing.hub import HubServer
from stereocrafter.weights.integrity import LOCK_NAME, read_lock
from stereocrafter.weights.manifest import from_json
from tests.containerize.helpers import ENV, IMAGE, ROOT, push_image

TOKEN = "hf_mirror_secret_1234"
URI = "s3://models/stereocrafter/weights/"


@pytest.fixture
def mirrored(aws, tiny_weights: Path):  # type: ignore[no-untyped-def]
    s3 = aws("s3")
    s3.create_bucket(Bucket="models")
    rows = read_lock(tiny_weights)
    with HubServer(tiny_weights, TOKEN) as hub:
        out = io.StringIO()
        written = mirror_weights(s3, URI, TOKEN, manifest=rows, endpoint=hub.url, out=out)
        yield {"s3": s3, "rows": rows, "written": written, "hub": hub, "out": out.getvalue()}


def _keys(s3, prefix: str = "stereocrafter/weights/") -> dict[str, int]:  # type: ignore[no-untyped-def]
    listed = s3.list_objects_v2(Bucket="models", Prefix=prefix).get("Contents", [])
    return {item["Key"][len(prefix) :]: item["Size"] for item in listed}


def test_the_mirror_holds_every_pinned_file_with_its_digest_and_the_lock(mirrored) -> None:
    s3, rows = mirrored["s3"], mirrored["rows"]
    keys = _keys(s3)
    assert set(keys) == {row.key for row in rows} | {LOCK_NAME}
    for row in rows:
        assert keys[row.key] == row.size
        assert (
            s3.head_object(Bucket="models", Key=f"stereocrafter/weights/{row.key}")["Metadata"][SHA_KEY]
            == row.sha256
        )
    lock = from_json(
        s3.get_object(Bucket="models", Key=f"stereocrafter/weights/{LOCK_NAME}")["Body"].read().decode()
    )
    assert {(r.key, r.revision, r.sha256) for r in lock} == {(r.key, r.revision, r.sha256) for r in rows}
    assert set(mirrored["hub"].auth_headers) == {f"Bearer {TOKEN}"}
    assert f"mirrored {len(rows)} files" in mirrored["out"]


def test_a_second_run_uploads_nothing(mirrored, tiny_weights: Path) -> None:
    out = io.StringIO()
    mirror_weights(
        mirrored["s3"], URI, TOKEN, manifest=mirrored["rows"], endpoint=mirrored["hub"].url, out=out
    )
    assert f"0 uploaded, {len(mirrored['rows'])} already there" in out.getvalue()


def test_a_file_that_differs_from_the_manifest_is_never_mirrored(aws, tiny_weights: Path) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="models")
    rows = tuple(replace(r, sha256="0" * 64) if r.path == "video_depth_anything_vits.pth" else r
                 for r in read_lock(tiny_weights))  # fmt: skip
    with (
        HubServer(tiny_weights, TOKEN) as hub,
        pytest.raises(DeployError, match=r"vits\.pth is not"),
    ):
        mirror_weights(s3, URI, TOKEN, manifest=rows, endpoint=hub.url, out=io.StringIO())
    assert _keys(s3) == {}


def test_the_deploy_checks_the_mirror_before_anything(mirrored) -> None:
    s3 = mirrored["s3"]
    assert len(check_mirror(s3, URI, PRESET_NAMES)) == len(mirrored["rows"])
    with pytest.raises(ConfigError, match="run weights-mirror to that prefix first"):
        check_mirror(s3, "s3://models/elsewhere/", PRESET_NAMES)
    s3.delete_object(
        Bucket="models", Key="stereocrafter/weights/andraniksargsyan/migan/migan_pipeline_v2.onnx"
    )
    assert check_mirror(s3, URI, ["turbo"])  # turbo runs no MI-GAN
    with pytest.raises(
        ConfigError, match=r"lacks andraniksargsyan/migan/migan_pipeline_v2.onnx for the presets clean"
    ):
        check_mirror(s3, URI, ["clean"])
    s3.put_object(Bucket="models", Key="stereocrafter/weights/notes/", Body=b"")
    with pytest.raises(ConfigError, match="is a folder key: SageMaker cannot place it"):
        check_mirror(s3, URI, ["turbo"])


def test_sagemaker_deploy_with_weights_s3_against_moto(mirrored, moto_server: str, tmp_path: Path) -> None:
    """The CLI as the Nx target runs it; CreateModel read back from moto: the mirror as uncompressed
    model data under /opt/ml/model, no token, no Hub."""
    env_file = tmp_path / ".env"
    without_token = {k: v for k, v in ENV.items() if k != "HF_TOKEN_SECRET_ARN"}
    env_file.write_text("\n".join(f"{k}={v}" for k, v in without_token.items()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(
        {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    )
    ecr = boto3.client("ecr", endpoint_url=moto_server, region_name="us-east-1")
    ecr.create_repository(repositoryName="stereocrafter-sagemaker")
    push_image(ecr, "abc1234")
    base = [sys.executable, "-m", "containerize.deploy", "--env-file", str(env_file), "sagemaker",
            "--image-tag", "abc1234", "--wait-delay", "1", "--wait-attempts", "3"]  # fmt: skip
    result = subprocess.run(base, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (
        result.returncode == 2
        and "HF_TOKEN_SECRET_ARN (or deploy from a mirror: --weights-s3)" in result.stderr
    )
    result = subprocess.run([*base, "--weights-s3", "s3://models/stereocrafter/weights"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "the endpoint needs no token and no internet" in result.stdout
    sm = boto3.client("sagemaker", endpoint_url=moto_server, region_name="us-east-1")
    (model,) = sm.list_models()["Models"]
    container = sm.describe_model(ModelName=model["ModelName"])["PrimaryContainer"]
    assert container["ModelDataSource"] == {
        "S3DataSource": {"S3Uri": URI, "S3DataType": "S3Prefix", "CompressionType": "None"}
    }
    assert container["Environment"] == {
        "WEIGHTS_DIR": "/opt/ml/model",
        "HF_HUB_OFFLINE": "1",
        "BENTOML_PORT": "8080",
    }
    config = sm.describe_endpoint_config(EndpointConfigName=model["ModelName"])["ProductionVariants"][0]
    assert config["ModelDataDownloadTimeoutInSeconds"] == 1800
    refused = subprocess.run([*base, "--weights-s3", "s3://models/nothing-here/"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert refused.returncode == 2 and "run weights-mirror to that prefix first" in refused.stderr
    assert len(sm.list_models()["Models"]) == 1  # nothing created for the refused one


def test_cli_weights_mirror_against_moto(aws, moto_server: str, tiny_weights: Path, tmp_path: Path) -> None:
    s3 = aws("s3")
    s3.create_bucket(Bucket="models")
    env_file = tmp_path / ".env"
    env_file.write_text("REGION=us-east-1\n")
    env = {k: v for k, v in os.environ.items() if k not in ENV}
    env.update(
        {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    )
    with HubServer(tiny_weights, TOKEN, public=("depth-anything/Video-Depth-Anything-Small",)) as hub:
        env["HF_ENDPOINT"] = hub.url
        command = [sys.executable, "-m", "containerize.deploy", "--env-file", str(env_file), "weights-mirror",
                   "--to", URI, "--presets", "instant",
                   "--manifest", str(tiny_weights / LOCK_NAME)]  # fmt: skip
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        gated = subprocess.run([*command[:-4], "--presets", "turbo"], cwd=ROOT, env=env, capture_output=True,
                               text=True, timeout=120)  # fmt: skip
    assert set(hub.auth_headers) == {""}  # public repo, no token
    assert set(_keys(s3)) == {
        "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth",
        "depth-anything/Video-Depth-Anything-Small/TINY-RANDOM-WEIGHTS.txt",
        LOCK_NAME,
    }
    assert gated.returncode == 2 and "need the gated SVD repo" in gated.stderr


def test_the_ec2_host_syncs_the_mirror_and_runs_without_a_token() -> None:
    script = "\n".join(ec2_script(f"{IMAGE}:abc1234", "us-east-1", "", weights_s3=URI))
    assert f"aws s3 sync {URI} /opt/stereocrafter/serving/weights --region us-east-1 --delete" in script
    assert "HF_TOKEN_ARN" not in script and "-e HF_HUB_OFFLINE=1 " in script
    subprocess.run(["bash", "-n"], input=script, text=True, check=True)


@pytest.mark.slow  # a server of its own (about 40 s with five conversions)
def test_a_service_starts_from_the_mirror_offline_and_serves_every_preset(
    mirrored, moto_server: str, tmp_path: Path
) -> None:
    from fractions import Fraction

    from stereocrafter.testing.media import make_video, scene_frames
    from stereocrafter.testing.stack import start_service, stop

    s3 = mirrored["s3"]
    model_dir = tmp_path / "opt-ml-model"  # what SageMaker writes: each key with the prefix trimmed
    for key in _keys(s3):
        (model_dir / key).parent.mkdir(parents=True, exist_ok=True)
        s3.download_file("models", f"stereocrafter/weights/{key}", str(model_dir / key))
    s3.create_bucket(Bucket="videos")
    clip = make_video(tmp_path / "clip.mp4", scene_frames(6, 64, 48), fps=Fraction(24))
    s3.upload_file(str(clip), "videos", "in/clip.mp4")
    env = {
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "WEIGHTS_DIR": str(model_dir),
        "HF_HUB_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
    }  # fmt: skip  (nothing listens there: no Hub to reach)
    svc = start_service(tmp_path, env)
    try:
        import httpx

        ping = httpx.get(f"{svc.url}/ping", timeout=5).json()
        assert {p["state"] for p in ping["presets"].values()} == {"ready"} and ping["status"] == "ready"
        for preset in PRESET_NAMES:
            result = svc.client.convert(
                "s3://videos/in/clip.mp4", f"s3://videos/out/{preset}.mp4", preset=preset
            )
            assert result["preset"] == preset and result["frames"] == 6 and result["tiny_weights"] is True
        log = svc.log.read_text(errors="replace")
        assert "HF_HUB_OFFLINE is set: no download" in log and "fetched" not in log
    finally:
        stop(svc)
    assert json.loads((model_dir / LOCK_NAME).read_text())["files"]


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3://models", "name a prefix under the bucket"),
        ("s3://models/../weights/", "a '.' or '..' path segment in its key: 's3://models/../weights/'"),
        ("https://models/weights/", "is not an s3://bucket/key URI: 'https://models/weights/'"),
        ("s3://Models_/weights/", "invalid bucket name 'Models_'"),
    ],
)
def test_a_prefix_that_is_not_one_is_refused_by_name(uri: str, says: str) -> None:
    from containerize.weights_mirror import prefix_of

    with pytest.raises(ConfigError, match=re.escape(says)):
        prefix_of(uri)
    assert prefix_of("s3://models/stereocrafter/weights") == ("models", "stereocrafter/weights/")
