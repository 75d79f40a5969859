"""``containerize.image_smoke``: the check of the image's torch, run here on this machine's torch (the
CPU build CI installs), which the image must never carry. The rest of the smoke needs buildah and a
built image (``make image-smoke``)."""

from __future__ import annotations

import subprocess
import sys

import torch

from containerize.cuda import image_cuda
from containerize.image_smoke import torch_check


def test_the_cpu_build_of_torch_fails_the_image_check() -> None:
    assert torch.version.cuda is None  # requirements/runtime.txt pins the CPU wheel here
    run = subprocess.run([sys.executable, "-c", torch_check(image_cuda())], capture_output=True, text=True,
                         timeout=120)  # fmt: skip
    want = ".".join(map(str, image_cuda()))
    assert run.returncode == 1 and "is the CPU build (torch.version.cuda is None)" in run.stderr
    assert f"the image's pins name CUDA {want}" in run.stderr


def test_a_torch_for_another_cuda_fails_it_and_the_right_one_goes_on_to_the_libraries() -> None:
    """This torch reported as a CUDA build (its version string replaced in the check's own process):
    another CUDA is refused by name; the expected one goes on to load cuBLAS and cuDNN, which this
    machine lacks, and says so."""
    patched = "import torch; torch.version.cuda = '{got}'\n"
    for got, message in (("12.8", "is built for CUDA 12.8; the image's pins name CUDA"),
                         (".".join(map(str, image_cuda())), "libcublas.so is not in the image")):  # fmt: skip
        script = patched.format(got=got) + torch_check(image_cuda())
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and message in run.stderr, run.stderr
