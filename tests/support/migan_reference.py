"""A literal walk through the published MI-GAN inference ``Generator.forward``
(Picsart-AI-Research/MI-GAN ``lib/model_zoo/migan_inference.py`` at ca4df2e), as plain functions
over its state dict: written for the tests, step for step in the published order (the in-place
leaky ReLU, the activation gain and clamp, the encoder's skip features, the synthesis' noise and
skip images), so that ``stereocrafter.models.migan`` is checked against it on the same weights."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def lrelu_agc(x: torch.Tensor) -> torch.Tensor:
    x = F.leaky_relu(x, negative_slope=0.2, inplace=True)
    x = x * np.sqrt(2)
    return x.clamp(-256, 256)


def separable(
    state: dict, prefix: str, x: torch.Tensor, *, down: bool = False, up: bool = False, noise: bool = False
) -> torch.Tensor:
    w1 = state[prefix + "conv1.weight"]
    x = F.conv2d(x, w1, state[prefix + "conv1.bias"], padding=w1.shape[-1] // 2, groups=w1.shape[0])
    x = lrelu_agc(x)
    if down:
        f = state[prefix + "downsample.filter.weight"]
        x = F.conv2d(x, f, stride=2, padding=1, groups=f.shape[0])
    x = F.conv2d(x, state[prefix + "conv2.weight"])
    if up:
        x = upsample(state, prefix + "upsample.", x)
    if noise:
        x = x.add_(state[prefix + "noise_const"] * state[prefix + "noise_strength"])
    return lrelu_agc(x)


def upsample(state: dict, prefix: str, x: torch.Tensor) -> torch.Tensor:
    x = F.interpolate(x, scale_factor=2, mode="nearest")
    x = x * state[prefix + "filter_const"]
    x = F.pad(x, pad=(2, 1, 2, 1))
    f = state[prefix + "filter.weight"]
    return F.conv2d(x, f, groups=f.shape[0])


@torch.no_grad()
def reference_generator(state: dict, x: torch.Tensor) -> torch.Tensor:
    resolution = next(int(k.split(".")[1][1:]) for k in state if k.endswith("fromrgb.weight"))
    log2res = int(np.log2(resolution))
    encode_res = [2**i for i in range(log2res, 1, -1)]
    # Encoder.forward
    h = None
    feats = {}
    for resi in encode_res[:-1]:
        p = f"encoder.b{resi}."
        if p + "fromrgb.weight" in state:
            y = lrelu_agc(F.conv2d(x, state[p + "fromrgb.weight"], state[p + "fromrgb.bias"]))
            h = h + y if h is not None else y
        feat = separable(state, p + "conv1.", h)
        h = separable(state, p + "conv2.", feat, down=True)
        feats[resi] = feat
    feat = separable(state, "encoder.b4.conv1.", h)
    h = separable(state, "encoder.b4.conv2.", feat)
    feats[4] = feat
    # Synthesis.forward: SynthesisBlockFirst, then one SynthesisBlock per resolution
    h = separable(state, "synthesis.b4.conv1.", h)
    h = h + feats[4]
    h = separable(state, "synthesis.b4.conv2.", h)
    img = F.conv2d(h, state["synthesis.b4.torgb.weight"], state["synthesis.b4.torgb.bias"])
    for res in [2**i for i in range(3, log2res + 1)]:
        p = f"synthesis.b{res}."
        h = separable(state, p + "conv1.", h, up=True, noise=True)
        h = h + feats[res]
        h = separable(state, p + "conv2.", h, noise=True)
        img = upsample(state, p + "upsample.", img)
        y = F.conv2d(h, state[p + "torgb.weight"], state[p + "torgb.bias"])
        img = img.add_(y)
    assert math.log2(img.shape[-1]) == log2res
    return img


def reference_demo_input(rgb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The demo's ``preprocess`` after its resize: rgb in [0, 1] -> [-1, 1], mask 1 = known."""
    img = rgb * 2 - 1
    return torch.cat([mask - 0.5, img * mask], dim=1)
