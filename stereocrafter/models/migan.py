"""MI-GAN (Sargsyan et al., ICCV 2023; Picsart-AI-Research/MI-GAN, code and weights MIT): the
inference generator on torch, written from the team's notes (``shared/reference/migan.md``) and a
reading of the published ``Generator(resolution)``, with the published module names so that the
published ``.pt`` (a plain state dict) loads as it is, strictly.

The network, at construction resolution R (the published file: R = 512, widths
``min(32768 / res, 512)``):

- input 4 channels ``[mask - 0.5, rgb * mask]``, rgb in [-1, 1], mask 1 on KNOWN pixels;
- encoder blocks ``b{R} .. b8``: two depthwise-separable convolutions (3x3 depthwise with bias,
  leaky ReLU, [the second: a [1, 3, 3, 1] blur with stride 2], 1x1 pointwise without bias, leaky
  ReLU); the first block adds ``fromrgb`` (1x1 of the 4 input channels, leaky ReLU); the output of
  each block's first convolution is its skip feature; ``b4`` does not downsample;
- synthesis ``b4`` (two separable convolutions, the encoder's 4x4 skip added between them, a 1x1
  ``torgb``) then ``b8 .. b{R}``: a separable convolution whose pointwise output is upsampled 2x
  (nearest, times a fixed [[1, 0], [0, 0]] pattern, padded (2, 1, 2, 1), a 4x4 [1, 3, 3, 1] kernel
  with gain 4), the skip added, a second separable convolution, each adding a fixed noise buffer
  times a learned strength before its last activation; the image is the sum over blocks of
  ``torgb`` outputs, each earlier sum upsampled the same way (StyleGAN2's skip architecture);
- activation: leaky ReLU 0.2 times sqrt(2), clamped to +-256.

The fixed buffers (upsampling pattern, noise) have the construction size: it runs at R x R only, so
the stage feeds it R x R tiles (``stages.migan``). Deterministic: identical input, identical output.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

LEAK, GAIN, CLAMP = 0.2, math.sqrt(2.0), 256.0


@dataclass(frozen=True)
class MiganArchitecture:
    resolution: int = 512  # the tile size it runs at
    ch_base: int = 32768
    ch_max: int = 512

    def width(self, res: int) -> int:
        return min(self.ch_base // res, self.ch_max)

    @property
    def levels(self) -> list[int]:
        """R, R/2, ..., 4."""
        if self.resolution < 8 or self.resolution & (self.resolution - 1):
            raise ValueError(f"MI-GAN's resolution is a power of 2 >= 8, not {self.resolution}")
        return [2**i for i in range(int(math.log2(self.resolution)), 1, -1)]


PUBLISHED = MiganArchitecture()  # migan_512_places2.pt


def act(x: torch.Tensor) -> torch.Tensor:
    return (F.leaky_relu(x, LEAK) * GAIN).clamp(-CLAMP, CLAMP)


def _blur_kernel(gain: float) -> torch.Tensor:
    """The 4x4 outer product of [1, 3, 3, 1], normalised to sum 1, times ``gain``."""
    tap = torch.tensor([1.0, 3.0, 3.0, 1.0])
    kernel = torch.outer(tap, tap)
    return kernel / kernel.sum() * gain


class Down2(nn.Module):
    """The fixed blur with stride 2 (a depthwise 4x4 convolution, padding 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.filter = nn.Conv2d(channels, channels, 4, stride=2, padding=1, groups=channels, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(_blur_kernel(1.0).expand(channels, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.filter(x)
        return out


class Up2(nn.Module):
    """2x upsampling: nearest, the fixed one-in-four pattern, padding (2, 1, 2, 1), the blur with gain 4."""

    filter_const: torch.Tensor

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        pattern = torch.zeros(1, 1, resolution, resolution)
        pattern[..., 0::2, 0::2] = 1.0
        self.register_buffer("filter_const", pattern)
        self.filter = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(_blur_kernel(4.0).expand(channels, 1, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") * self.filter_const
        out: torch.Tensor = self.filter(F.pad(x, (2, 1, 2, 1)))
        return out


class SepConv(nn.Module):
    """Depthwise 3x3 (bias) -> activation -> [down] -> pointwise 1x1 (no bias) -> [up] -> [+ noise]
    -> activation."""

    noise_const: torch.Tensor

    def __init__(
        self, cin: int, cout: int, *, down: bool = False, up: bool = False, noise: bool = False,
        resolution: int = 0,
    ) -> None:  # fmt: skip
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=True)
        self.conv2 = nn.Conv2d(cin, cout, 1, bias=False)
        self.downsample = Down2(cin) if down else None
        self.upsample = Up2(cout, resolution) if up else None
        self.use_noise = noise
        if noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = act(self.conv1(x))
        if self.downsample is not None:
            x = self.downsample(x)
        x = self.conv2(x)
        if self.upsample is not None:
            x = self.upsample(x)
        if self.use_noise:
            x = x + self.noise_const * self.noise_strength
        return act(x)


class EncoderBlock(nn.Module):
    def __init__(self, cin: int, cout: int, *, first: bool, down: bool) -> None:
        super().__init__()
        self.fromrgb = nn.Conv2d(4, cin, 1) if first else None
        self.conv1 = SepConv(cin, cin)
        self.conv2 = SepConv(cin, cout, down=down)

    def forward(self, x: torch.Tensor | None, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fromrgb is not None:
            y = act(self.fromrgb(image))
            x = y if x is None else x + y
        assert x is not None
        skip = self.conv1(x)
        return self.conv2(skip), skip


class Encoder(nn.Module):
    def __init__(self, arch: MiganArchitecture) -> None:
        super().__init__()
        levels = arch.levels
        for i, res in enumerate(levels[:-1]):
            block = EncoderBlock(arch.width(res), arch.width(levels[i + 1]), first=i == 0, down=True)
            self.add_module(f"b{res}", block)
        self.add_module("b4", EncoderBlock(arch.width(4), arch.width(4), first=False, down=False))
        self.levels = levels

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        x: torch.Tensor | None = None
        skips: dict[int, torch.Tensor] = {}
        for res in self.levels:
            x, skips[res] = getattr(self, f"b{res}")(x, image)
        assert x is not None
        return x, skips


class SynthesisFirst(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv1 = SepConv(width, width)
        self.conv2 = SepConv(width, width)
        self.torgb = nn.Conv2d(width, 3, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + skip)
        return x, self.torgb(x)


class SynthesisBlock(nn.Module):
    def __init__(self, cin: int, cout: int, resolution: int) -> None:
        super().__init__()
        self.conv1 = SepConv(cin, cout, up=True, noise=True, resolution=resolution)
        self.conv2 = SepConv(cout, cout, noise=True, resolution=resolution)
        self.torgb = nn.Conv2d(cout, 3, 1)
        self.upsample = Up2(3, resolution)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor, image: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + skip)
        return x, self.upsample(image) + self.torgb(x)


class Synthesis(nn.Module):
    def __init__(self, arch: MiganArchitecture) -> None:
        super().__init__()
        self.b4 = SynthesisFirst(arch.width(4))
        self.rising = arch.levels[::-1][1:]  # 8, 16, ..., R
        for res in self.rising:
            self.add_module(f"b{res}", SynthesisBlock(arch.width(res // 2), arch.width(res), res))

    def forward(self, x: torch.Tensor, skips: dict[int, torch.Tensor]) -> torch.Tensor:
        x, image = self.b4(x, skips[4])
        for res in self.rising:
            x, image = getattr(self, f"b{res}")(x, skips[res], image)
        out: torch.Tensor = image
        return out


class MiganGenerator(nn.Module):
    """(n, 4, R, R) ``[mask - 0.5, rgb * mask]`` -> (n, 3, R, R) rgb in about [-1, 1]."""

    def __init__(self, arch: MiganArchitecture = PUBLISHED) -> None:
        super().__init__()
        self.arch = arch
        self.synthesis = Synthesis(arch)
        self.encoder = Encoder(arch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code, skips = self.encoder(x)
        out: torch.Tensor = self.synthesis(code, skips)
        return out


def model_input(rgb: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """rgb (n, 3, R, R) in [0, 1], known (n, 1, R, R) with 1 = known -> the generator's input (the
    published demo's preprocessing after its resize: rgb to [-1, 1], ``[mask - 0.5, rgb * mask]``)."""
    return torch.cat([known - 0.5, (rgb * 2.0 - 1.0) * known], dim=1)


def composite(rgb: torch.Tensor, known: torch.Tensor, generated: torch.Tensor) -> torch.Tensor:
    """The demo's composition in [0, 1]: known pixels kept, the generated ones (mapped with
    ``x * 0.5 + 0.5`` and clamped) elsewhere. The demo then truncates to uint8; here the encoder
    quantises once at the end."""
    return rgb * known + (generated * 0.5 + 0.5).clamp(0.0, 1.0) * (1.0 - known)


def architecture_of(state: dict[str, torch.Tensor]) -> MiganArchitecture:
    """The sizes a published-layout state dict holds: the resolution from the encoder block with
    ``fromrgb``, the widths from the encoder's depthwise convolutions."""
    tops = [int(k.split(".")[1][1:]) for k in state if k.startswith("encoder.b") and ".fromrgb.weight" in k]
    if len(tops) != 1:
        raise ValueError("no single encoder block with fromrgb (encoder.b<R>.fromrgb.weight)")
    resolution = tops[0]
    widths = {
        int(k.split(".")[1][1:]): int(v.shape[0])
        for k, v in state.items()
        if k.startswith("encoder.b") and k.endswith(".conv1.conv1.weight")
    }
    ch_max = max(widths.values())
    return MiganArchitecture(resolution, widths[resolution] * resolution, ch_max)


def load_migan(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> MiganGenerator:
    """The generator with the state dict at ``path``: the authors' ``.pt``, read with
    ``torch.load(weights_only=True)`` (no pickled code runs), or a ``.safetensors`` file (the one
    ``models.migan_onnx`` converts from the published ONNX pipeline). Loaded strictly: a missing or an
    unknown key, or a shape that differs, is a ``ValueError`` naming it."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file: torch's own message, one line
        raise ValueError(f"{path} is not a readable MI-GAN state dict ({type(err).__name__})") from None
    return generator_from_state(state, str(path)).to(device=device, dtype=dtype)


def generator_from_state(state: object, where: str) -> MiganGenerator:
    """A generator (float32, CPU, eval, no grad) from a published-layout state dict, strictly."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{where} is not a state dict of tensors")
    try:
        arch = architecture_of(state)
        model = MiganGenerator(arch)
    except (KeyError, ValueError, IndexError) as err:
        raise ValueError(f"{where} is not an MI-GAN generator: {err}") from None
    expected = model.state_dict()
    missing, unknown = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unknown:
        raise ValueError(
            f"{where} is not an MI-GAN generator of resolution {arch.resolution}: "
            f"missing keys {missing[:5]}, unknown keys {unknown[:5]}"
        )
    wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if wrong:
        raise ValueError(f"{where}: {wrong[0]} is {tuple(state[wrong[0]].shape)}, expected "
                         f"{tuple(expected[wrong[0]].shape)}")  # fmt: skip
    model.load_state_dict(state, strict=True)
    return model.eval().requires_grad_(False)
