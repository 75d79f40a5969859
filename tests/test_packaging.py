"""The Bento: `bentoml build` for real, then its Dockerfile, entrypoint and contents checked, and the
built bento started through its own entrypoint the way SageMaker starts the image (`... serve`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from stereocrafter.testing.net import free_port

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def bento(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = {**os.environ, "BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "true"}
    subprocess.run(
        [str(BIN / "bentoml"), "build", "--version", "ci"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    return home / "bentos" / "stereocrafter" / "ci"


def test_dockerfile_is_sagemaker_ready(bento: Path) -> None:
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert dockerfile.count("FROM python:3.11-slim") == 1  # BentoML's v2 builder (no cuda_version)
    env = dict(re.findall(r"^ARG (\w+)=(.*)$", dockerfile, flags=re.M))
    assert env["BENTOML_PORT"] == "8080"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "all"  # never the v1 builder's empty value
    # video: the NVIDIA runtime mounts libnvidia-encode, without which NVENC never opens
    assert set(env["NVIDIA_DRIVER_CAPABILITIES"].split(",")) == {"compute", "utility", "video"}
    assert "CUDA_VISIBLE_DEVICES" not in env  # every GPU visible: one conversion slot each
    assert env["BENTOML_DISABLE_GPU_ALLOCATION"] == "1"
    assert env["WEIGHTS_DIR"] == "/opt/ml/model/weights"
    assert env["STEREOCRAFTER_DEVICE"] == "cuda"  # no silent CPU fallback in the image
    assert env["PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert 'ENTRYPOINT [ "/home/bentoml/bento/env/docker/entrypoint.sh" ]' in dockerfile
    # The setup script (run as root, before USER bentoml) makes WEIGHTS_DIR writable.
    script = next((bento / "env" / "docker").glob("script__*")).read_text()
    assert "mkdir -p /opt/ml/model/weights" in script and "chown" in script
    assert "apt-get purge" in script and "build-essential git" in script  # no compiler at run time
    assert dockerfile.index("./env/docker/script__") < dockerfile.index("USER bentoml")


def test_entrypoint_turns_serve_into_bentoml_serve(bento: Path) -> None:
    """What SageMaker's `docker run IMAGE serve` relies on (it is also run for real below)."""
    entrypoint = (bento / "env" / "docker" / "entrypoint.sh").read_text()
    assert "[ \"${1}\" = 'serve' ]" in entrypoint
    assert 'exec bentoml "$@" "$BENTO_PATH"' in entrypoint


def test_contents_and_pins(bento: Path) -> None:
    files = {p.relative_to(bento / "src").as_posix() for p in (bento / "src").rglob("*") if p.is_file()}
    assert "service.py" in files and "stereocrafter/pipeline/run.py" in files
    assert not any(f.startswith(("tests/", "bench/", "demo/")) for f in files)
    requirements = (bento / "env" / "python" / "requirements.txt").read_text()
    for pin in ("torch==2.13.0", "diffusers==0.42.1", "bentoml==1.4.40", "av==18.1.0", "fastapi=="):
        assert pin in requirements
    # the CUDA wheels torch pulls, pinned (requirements/image.txt): CUDA 13.0, driver 580's
    for pin in (
        "cuda-toolkit==13.0.3",
        "nvidia-cudnn-cu13==9.20.0.48",
        "triton==3.7.1",
        "nvidia-nvjitlink==",
    ):
        assert pin in requirements
    assert "pytest" not in requirements and "moto" not in requirements


def test_no_secret_values_baked_in(bento: Path) -> None:
    secret_like = re.compile(
        r"hf_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}|aws_secret_access_key\s*=|HF_TOKEN\s*=\s*\S"
    )
    for path in bento.rglob("*"):
        if path.is_file() and path.suffix not in {".safetensors"}:
            text = path.read_text(errors="ignore")
            assert not secret_like.search(text), f"secret-like value in {path}"
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "HF_TOKEN_ARN" not in dockerfile  # configured per deployment, not baked in


@pytest.mark.slow  # a server of its own, from the built bento (9 s): in the slow tier
def test_built_bento_serves_through_its_entrypoint(bento: Path, tiny_weights: Path, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BENTOML_", "HF_"))},
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "BENTO_PATH": str(bento),
        "BENTOML_HOME": str(tmp_path / "home"),
        "BENTOML_PORT": str(port),
        "BENTOML_HOST": "127.0.0.1",
        "BENTOML_DO_NOT_TRACK": "true",
        "WEIGHTS_DIR": str(tiny_weights),
        "STEREOCRAFTER_DEVICE": "cpu",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        ["bash", str(bento / "env" / "docker" / "entrypoint.sh"), "serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline, status = time.monotonic() + 180, 0
        while time.monotonic() < deadline and status != 200:
            assert process.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code
            except httpx.HTTPError:
                status = 0
            time.sleep(0.5)
        assert status == 200
        response = httpx.post(f"http://127.0.0.1:{port}/invocations", content=b"{}", timeout=10)
        assert response.status_code == 400 and response.json()["error"] == "bad_request"
    finally:
        process.terminate()
        process.wait(timeout=30)
