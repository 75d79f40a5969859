"""The image's CUDA against the AMI's driver (``containerize.cuda``): the table, the rule, the pins
of requirements/image.txt, and what the package index says torch pulls (read from its real
metadata, recorded below, so the logic is checked without the network; CI also runs the check
against the live index: ``python -m containerize.cuda check --resolve`` in .ci/run)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from containerize import cuda

# torch 2.13.0's requires_dist on PyPI (Linux wheels), as pip's dry-run report gave it on
# 2026-12-01; cuda-toolkit 13.0.3's, cut to the extras torch asks for.
TORCH_2_13 = [
    "filelock", "typing-extensions>=4.10.0", "setuptools>=77.0.3", "sympy>=1.13.3", "networkx>=2.5.1",
    "jinja2", "fsspec>=0.8.5",
    'cuda-toolkit[cublas,cudart,cufft,cufile,cupti,curand,cusolver,cusparse,nvjitlink,nvrtc,nvtx]==13.0.3; '
    'platform_system == "Linux"',
    'cuda-bindings<14,>=13.0.3; platform_system == "Linux" and python_version < "3.15"',
    'nvidia-cudnn-cu13==9.20.0.48; platform_system == "Linux"',
    'nvidia-cusparselt-cu13==0.8.1; platform_system == "Linux"',
    'nvidia-nccl-cu13==2.29.7; platform_system == "Linux"',
    'nvidia-nvshmem-cu13==3.4.5; platform_system == "Linux"',
    'triton==3.7.1; platform_system == "Linux" and python_version < "3.15"',
    'optree>=0.13.0; extra == "optree"',
]  # fmt: skip
_LINUX = "sys_platform == 'linux' and platform_machine == 'x86_64'"
TOOLKIT_13_0_3 = [
    f"nvidia-cublas==13.1.1.3.*; ({_LINUX}) and extra == 'cublas'",
    f"nvidia-cuda-nvrtc==13.0.88.*; ({_LINUX}) and extra == 'cublas'",
    f"nvidia-cuda-runtime==13.0.96.*; ({_LINUX}) and extra == 'cudart'",
    f"nvidia-cufft==12.0.0.61.*; ({_LINUX}) and extra == 'cufft'",
    f"nvidia-nvjitlink<14,>=13.0.88; ({_LINUX}) and extra == 'nvjitlink'",
    f"nvidia-npp==13.0.1.2.*; ({_LINUX}) and extra == 'npp'",  # an extra torch does not ask for
]


def test_today_s_torch_cannot_start_on_the_default_driver_and_starts_on_the_chosen_ami() -> None:
    """The failing and the passing case of the CI check: torch 2.13.0 (CUDA 13.0) with no
    InferenceAmiVersion (driver 470 on g4dn/g5/p4d) or any AL2 AMI, and with the AMI deployed."""
    need = cuda.image_cuda()
    assert need == (13, 0)
    for ami in (None, "al2-ami-sagemaker-inference-gpu-2", "al2-ami-sagemaker-inference-gpu-2-1",
                "al2-ami-sagemaker-inference-gpu-3-1"):  # fmt: skip
        with pytest.raises(
            cuda.MisfitError, match=r"needs CUDA 13\.0.*Use al2023-ami-sagemaker-inference-gpu-4-1"
        ):
            cuda.check_fit(need, ami)
    assert cuda.check_fit(need, cuda.DEFAULT_AMI).driver == 580
    for family in cuda.SUPPORTED_FAMILIES:
        cuda.check_fit(need, cuda.DEFAULT_AMI, f"ml.{family}.xlarge")
    # torch 2.10.0 (CUDA 12.8) would need the 580 AMI too: 550 runs CUDA up to 12.4
    with pytest.raises(cuda.MisfitError, match=r"CUDA 12\.8"):
        cuda.check_fit((12, 8), "al2-ami-sagemaker-inference-gpu-3-1")
    cuda.check_fit((12, 4), "al2-ami-sagemaker-inference-gpu-3-1")


def test_the_cli_check_fails_without_the_ami_and_passes_with_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert cuda.main(["check", "--ami", "none"]) == 1
    assert "driver 470 (CUDA 11.4): CUDA would not start" in capsys.readouterr().err
    assert cuda.main(["check"]) == 0
    assert "ok: torch 2.13.0 needs CUDA 13.0" in capsys.readouterr().out
    assert cuda.main(["check", "--instance-type", "ml.p3.2xlarge"]) == 1  # V100: older than CUDA 13


def test_the_cuda_version_is_read_from_the_pins(tmp_path: Path) -> None:
    path = tmp_path / "r.txt"
    path.write_text("torch==2.10.0\nnvidia-cuda-runtime-cu12==12.8.90  # a comment\n")
    assert cuda.image_cuda(path) == (12, 8)
    path.write_text("torch==2.13.0\n")
    with pytest.raises(cuda.MisfitError, match="no CUDA runtime is pinned"):
        cuda.image_cuda(path)
    path.write_text("torch>=2.4\n")
    with pytest.raises(ValueError, match="not an exact pin"):
        cuda.read_pins(path)


def test_image_txt_is_runtime_txt_plus_cuda_wheels(tmp_path: Path) -> None:
    cuda.check_image_file()  # the committed files
    runtime = cuda.RUNTIME_REQUIREMENTS.read_text()
    image = tmp_path / "image.txt"
    image.write_text(runtime.replace("diffusers==0.42.1", "diffusers==0.41.0") + "cuda-toolkit==13.0.3\n")
    with pytest.raises(
        cuda.MisfitError, match=re.escape("diffusers: 0.42.1 in runtime.txt, 0.41.0 in image.txt")
    ):
        cuda.check_image_file(image)
    image.write_text(runtime + "requests-toolbelt==1.0.0\n")
    with pytest.raises(cuda.MisfitError, match="requests-toolbelt is not a CUDA package"):
        cuda.check_image_file(image)


def test_every_cuda_wheel_torch_pulls_must_be_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    metadata = {"torch": {"requires_dist": TORCH_2_13}, "cuda-toolkit": {"requires_dist": TOOLKIT_13_0_3}}
    monkeypatch.setattr(cuda, "index_metadata", lambda requirement: metadata[requirement.split("==")[0]])
    pins = cuda.read_pins(cuda.IMAGE_REQUIREMENTS)
    lines = cuda.resolve_check(pins)
    assert "torch 2.13.0 -> triton==3.7.1: pinned 3.7.1" in lines
    assert "  cuda-toolkit -> nvidia-nvjitlink<14,>=13.0.88: pinned 13.0.88.*" in lines
    assert not any("npp" in line or "optree" in line or "sympy" in line for line in lines)
    for broken, says in (
        ({**pins, "nvidia-cudnn-cu13": "9.19.0.1"}, "nvidia-cudnn-cu13==9.20.0.48 (pinned: 9.19.0.1)"),
        (
            {k: v for k, v in pins.items() if k != "nvidia-nvjitlink"},
            "nvidia-nvjitlink<14,>=13.0.88 (pinned: not",
        ),
        ({**pins, "nvidia-cuda-runtime": "13.1.80.*"}, "nvidia-cuda-runtime==13.0.96.* (pinned: 13.1.80.*)"),
    ):
        with pytest.raises(cuda.MisfitError, match=re.escape(says)):
            cuda.resolve_check(broken)
