"""``serving.gpu``: GPU failure handling that a CPU machine can check: the device check and the
classification of CUDA errors."""

from __future__ import annotations

import pytest
import torch

from stereocrafter.errors import DeviceUnavailableError
from stereocrafter.serving.gpu import check_device, classify, device_lines


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA (what it tests)")
def test_cuda_asked_for_without_a_device_is_an_error_not_the_cpu() -> None:
    with pytest.raises(DeviceUnavailableError) as caught:
        check_device("cuda")
    message = caught.value.message
    assert "STEREOCRAFTER_DEVICE=cuda" in message and "NVIDIA driver" in message
    assert f"torch {torch.__version__}" in message and "built for CUDA" in message
    assert caught.value.status == 503
    check_device("cpu")  # asked for, and there
    assert device_lines("cpu") == [f"device: cpu (torch {torch.__version__})"]


def test_cuda_errors_are_classified() -> None:
    assert classify(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "oom"
    assert classify(RuntimeError("CUDA error: out of memory")) == "oom"
    sticky = [
        "CUDA error: an illegal memory access was encountered",
        "CUDA error: uncorrectable ECC error encountered",
        "CUDA error: unspecified launch failure",
        "device-side assert triggered",
    ]
    for text in sticky:
        assert classify(torch.AcceleratorError(text)) == "fatal", text
        assert classify(RuntimeError(text)) == "fatal", text
    assert classify(ValueError("an illegal memory access")) is None  # not from CUDA
    assert classify(RuntimeError("shapes cannot be multiplied")) is None
