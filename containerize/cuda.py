"""The image's CUDA and the SageMaker AMI it runs on: which CUDA the image's torch needs, which CUDA
each AMI's NVIDIA driver runs, and a check that the two fit (CI runs it; ``sagemaker-deploy``
refuses a misfit before it creates anything).

    python -m containerize.cuda check [--ami NAME|none] [--instance-type ml.g5.xlarge] [--resolve]
    python -m containerize.cuda table

The image installs ``requirements/image.txt``: ``requirements/runtime.txt``'s pins (what CI tests,
torch 2.13.0 among them) plus the CUDA wheels that torch 2.13.0 pulls on Linux x86_64, each pinned.
``--resolve`` asks the package index what torch and cuda-toolkit require (their metadata, no
download) and fails when a CUDA package they pull is not pinned in ``image.txt`` at a version they
accept, so the image cannot drift to another CUDA unnoticed.

The rule is strict: the CUDA runtime in the image must not be newer than the CUDA version of the
AMI's driver. CUDA's minor-version compatibility would let a 12.8 runtime start on a 12.2 driver,
but not the PTX that the driver must compile (Triton's kernels, torch.compile) nor features newer
than the driver; and the ``-2-1``/``-3-1``/``-4-1`` AMIs do not mount NVIDIA's forward-compat
libraries, so a newer CUDA major never starts there.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
IMAGE_REQUIREMENTS = ROOT / "requirements" / "image.txt"
RUNTIME_REQUIREMENTS = ROOT / "requirements" / "runtime.txt"

# Sources: botocore 1.44.8's SageMaker service model (ProductionVariant.InferenceAmiVersion: the
# five AMI names with their driver and CUDA versions) and the SageMaker Developer Guide, "Best
# practices to minimize interruptions during GPU driver upgrades" (inference-gpu-drivers: the
# drivers an endpoint gets without an AMI version, per instance family).


@dataclass(frozen=True)
class Ami:
    name: str
    driver: int  # the NVIDIA driver branch
    cuda: tuple[int, int]  # the highest CUDA version that driver runs
    note: str = ""


AMIS: dict[str, Ami] = {
    ami.name: ami
    for ami in (
        Ami("al2-ami-sagemaker-inference-gpu-2", 535, (12, 2)),
        Ami("al2-ami-sagemaker-inference-gpu-2-1", 535, (12, 2), "CUDA-compat mounting disabled"),
        Ami("al2-ami-sagemaker-inference-gpu-3-1", 550, (12, 4), "CUDA-compat mounting disabled"),
        Ami("al2023-ami-sagemaker-inference-gpu-4-1", 580, (13, 0), "CUDA-compat mounting disabled"),
    )
}
# Batch Transform's AMIs (TransformResources.TransformAmiVersion): botocore 1.44.8's service model
# lists these two with their drivers. Neither runs CUDA 13: a transform job of this image needs an
# AMI AWS has not listed yet, named with its driver (``containerize.batch``: --ami, --ami-driver).
BATCH_AMIS: dict[str, Ami] = {
    ami.name: ami
    for ami in (
        Ami("al2-ami-sagemaker-batch-gpu-470", 470, (11, 4)),
        Ami("al2-ami-sagemaker-batch-gpu-535", 535, (12, 2)),
    )
}
# The highest CUDA each driver branch runs (NVIDIA's CUDA release notes, table 3).
DRIVER_CUDA: dict[int, tuple[int, int]] = {470: (11, 4), 525: (12, 0), 535: (12, 2), 550: (12, 4),
                                           570: (12, 8), 580: (13, 0)}  # fmt: skip

# Without InferenceAmiVersion, ml.g4dn, g5, p4d and p4de get driver 470 (CUDA 11.4), g6 and p5 get
# 535 (CUDA 12.2): the lowest is what an endpoint config without the field can be given.
NO_AMI = Ami("(none: SageMaker's default driver)", 470, (11, 4), "470 on g4dn/g5/p4d, 535 on g6/p5")
# The one this image is deployed with (``sagemaker-deploy`` sends it; ``--ami`` to choose another).
DEFAULT_AMI = "al2023-ami-sagemaker-inference-gpu-4-1"

# Compute capability per instance family; CUDA 13 builds for Turing (7.5) and newer only.
FAMILY_ARCH: dict[str, tuple[int, int]] = {
    "g4dn": (7, 5), "g5": (8, 6), "g6": (8, 9), "g6e": (8, 9), "p3": (7, 0), "p4d": (8, 0),
    "p4de": (8, 0), "p5": (9, 0), "p5e": (9, 0), "p5en": (9, 0),
}  # fmt: skip
MIN_ARCH = {12: (5, 0), 13: (7, 5)}  # per CUDA major: the oldest GPU architecture it builds for
# per CUDA major: the oldest driver branch that runs it (NVIDIA's CUDA release notes, table 3);
# the EC2 host's roll checks its driver against this before it replaces the container
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
SUPPORTED_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p4de", "p5", "p5e", "p5en")

# The packages that carry CUDA code: pinned in image.txt, each at a version torch accepts.
CUDA_PACKAGE = re.compile(r"^(nvidia-.*|cuda-toolkit|cuda-bindings|cuda-pathfinder|triton)$")
# Where the CUDA version is read from, in order: the toolkit's metapackage, then the runtime's.
RUNTIME_PINS = ("cuda-toolkit", "nvidia-cuda-runtime", "nvidia-cuda-runtime-cu12", "nvidia-cuda-runtime-cu11")


class MisfitError(Exception):
    """The image cannot start CUDA on that AMI (or that instance family)."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(path: Path) -> dict[str, str]:
    """``name==spec`` lines of a requirements file, by normalised name (``spec`` may end in ``.*``)."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^;\s]+)", line)
        if match is None:
            raise ValueError(f"{path.name}: not an exact pin: {raw!r}")
        pins[_normal(match.group(1))] = match.group(3)
    return pins


def cuda_of(pins: dict[str, str]) -> tuple[int, int]:
    """The CUDA (major, minor) a set of pins installs: the toolkit's version, else the runtime's."""
    for name in RUNTIME_PINS:
        if name in pins:
            major, minor = pins[name].split(".")[:2]
            return int(major), int(minor)
    raise MisfitError("no CUDA runtime is pinned (cuda-toolkit or nvidia-cuda-runtime*): a CPU build?")


def image_cuda(path: Path = IMAGE_REQUIREMENTS) -> tuple[int, int]:
    return cuda_of(read_pins(path))


def family_of(instance_type: str) -> str:
    """``ml.g5.2xlarge`` -> ``g5``."""
    parts = instance_type.split(".")
    return parts[1] if len(parts) == 3 and parts[0] == "ml" else instance_type


def check_fit(
    cuda: tuple[int, int],
    ami_name: str | None,
    instance_type: str | None = None,
    *,
    amis: dict[str, Ami] = AMIS,
    field: str = "InferenceAmiVersion",
) -> Ami:
    """The AMI when an image needing CUDA ``cuda`` starts on it (and on ``instance_type``'s GPU),
    else ``MisfitError`` saying why and what would fit. ``amis``: the table the name is looked up
    in (``BATCH_AMIS`` for a transform job's ``TransformAmiVersion``)."""
    if ami_name is not None and ami_name not in amis:
        raise MisfitError(f"unknown {field} {ami_name!r}; known: {', '.join(amis)}")
    ami = amis[ami_name] if ami_name is not None else NO_AMI
    need = f"{cuda[0]}.{cuda[1]}"
    if cuda > ami.cuda:
        fits = [a.name for a in amis.values() if a.cuda >= cuda]
        raise MisfitError(
            f"the image's torch needs CUDA {need}; {ami.name} has NVIDIA driver {ami.driver} "
            f"(CUDA {ami.cuda[0]}.{ami.cuda[1]}): CUDA would not start (/ping 503 'no CUDA device "
            f"is usable'). Use {' or '.join(fits) or 'a newer AMI'}"
        )
    if instance_type is not None:
        family = family_of(instance_type)
        arch = FAMILY_ARCH.get(family)
        oldest = MIN_ARCH.get(cuda[0], (0, 0))
        if arch is not None and arch < oldest:
            raise MisfitError(
                f"{instance_type}: its GPU (compute capability {arch[0]}.{arch[1]}) is older than CUDA "
                f"{cuda[0]} supports ({oldest[0]}.{oldest[1]}, Turing, and newer); supported families: "
                + ", ".join(SUPPORTED_FAMILIES)
            )
    return ami


# --- what the index says torch needs (CI, --resolve) ---------------------------------------------


def index_metadata(requirement: str) -> dict[str, object]:
    """The package index's metadata of the wheel ``requirement`` resolves to on Linux x86_64,
    CPython 3.11 (``pip install --dry-run --report``: the metadata only, no download). Runs pip
    without this machine's configuration, whose local wheels would give torch's CPU build."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    cert = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--no-deps",
            "--ignore-installed", "--report", str(report), "--target", str(Path(tmp) / "t"),
            "--platform", "manylinux_2_28_x86_64", "--only-binary=:all:", "--python-version", "3.11",
            *(["--cert", cert] if cert else []), requirement,
        ]  # fmt: skip
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise MisfitError(f"pip could not resolve {requirement}: {done.stderr.strip()[-500:]}")
        metadata: dict[str, object] = json.loads(report.read_text())["install"][0]["metadata"]
        return metadata


def linux_requirements(metadata: dict[str, object], extras: tuple[str, ...] = ()) -> list[Requirement]:
    """The requirements of ``metadata`` that apply on Linux x86_64, CPython 3.11, with ``extras``."""
    from packaging.requirements import Requirement

    environment = {"platform_system": "Linux", "sys_platform": "linux", "platform_machine": "x86_64",
                   "python_version": "3.11", "python_full_version": "3.11.7"}  # fmt: skip
    found = []
    for text in metadata.get("requires_dist") or []:  # type: ignore[attr-defined]
        req = Requirement(str(text))
        if req.marker is None or any(
            req.marker.evaluate({**environment, "extra": extra}) for extra in (extras or ("",))
        ):
            found.append(req)
    return found


def resolve_check(pins: dict[str, str]) -> list[str]:
    """Every CUDA package that the pinned torch (and the cuda-toolkit extras it asks for) pulls is
    pinned in ``pins`` at a version it accepts; returns what was checked, one line each."""
    from packaging.specifiers import SpecifierSet

    def accepted(name: str, spec: SpecifierSet) -> bool:
        pinned = pins.get(name)
        if pinned is None:
            return False
        version = pinned[:-2] if pinned.endswith(".*") else pinned
        # a prefix pin (``==13.1.1.3.*``) is accepted when the version it names is
        return spec.contains(version, prereleases=True) or str(spec) == f"=={pinned}"

    lines: list[str] = []
    problems: list[str] = []
    torch_requires = linux_requirements(index_metadata(f"torch=={pins['torch']}"))
    for req in torch_requires:
        name = _normal(req.name)
        if not CUDA_PACKAGE.match(name):
            continue
        ok = accepted(name, req.specifier)
        lines.append(f"torch {pins['torch']} -> {req.name}{req.specifier}: pinned {pins.get(name, 'NO')}")
        if not ok:
            problems.append(f"{req.name}{req.specifier} (pinned: {pins.get(name, 'not pinned')})")
        if name == "cuda-toolkit":
            toolkit = index_metadata(f"cuda-toolkit=={pins['cuda-toolkit']}")
            for sub in linux_requirements(toolkit, tuple(sorted(req.extras))):
                subname = _normal(sub.name)
                lines.append(f"  cuda-toolkit -> {sub.name}{sub.specifier}: pinned {pins.get(subname, 'NO')}")
                if not accepted(subname, sub.specifier):
                    problems.append(f"{sub.name}{sub.specifier} (pinned: {pins.get(subname, 'not pinned')})")
    lines = list(dict.fromkeys(lines))  # the toolkit's extras name some components twice
    if problems:
        raise MisfitError("requirements/image.txt does not pin what torch pulls: " + "; ".join(problems))
    return lines


def check_image_file(image: Path = IMAGE_REQUIREMENTS, runtime: Path = RUNTIME_REQUIREMENTS) -> None:
    """``image.txt`` = ``runtime.txt``'s pins, unchanged, plus CUDA packages only."""
    image_pins, runtime_pins = read_pins(image), read_pins(runtime)
    changed = [f"{n}: {v} in runtime.txt, {image_pins.get(n)} in image.txt"
               for n, v in runtime_pins.items() if image_pins.get(n) != v]  # fmt: skip
    extra = [n for n in image_pins if n not in runtime_pins and not CUDA_PACKAGE.match(n)]
    if changed or extra:
        raise MisfitError(
            "requirements/image.txt must be runtime.txt's pins plus the CUDA wheels: "
            + "; ".join(changed + [f"{n} is not a CUDA package" for n in extra])
        )


def table_lines(cuda: tuple[int, int]) -> list[str]:
    rows = [f"image: torch needs CUDA {cuda[0]}.{cuda[1]} ({IMAGE_REQUIREMENTS.name})"]
    for ami in (NO_AMI, *AMIS.values()):
        fits = "runs it" if cuda <= ami.cuda else "CANNOT start it"
        default = "  <- sagemaker-deploy's default" if ami.name == DEFAULT_AMI else ""
        rows.append(f"  {ami.name}: driver {ami.driver}, CUDA {ami.cuda[0]}.{ami.cuda[1]}: {fits}{default}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m containerize.cuda", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="does the image's CUDA start on the AMI (exit 1 if not)")
    check.add_argument(
        "--ami", default=DEFAULT_AMI, help=f"InferenceAmiVersion, or none (default {DEFAULT_AMI})"
    )
    check.add_argument("--instance-type", help="also check the instance family's GPU, e.g. ml.g5.xlarge")
    check.add_argument("--requirements", type=Path, default=IMAGE_REQUIREMENTS)
    check.add_argument("--resolve", action="store_true", help="ask the index what torch pulls (network)")
    commands.add_parser("table", help="every AMI and whether the image's CUDA starts on it")
    args = parser.parse_args(argv)
    try:
        if args.command == "table":
            print("\n".join(table_lines(image_cuda())))
            return 0
        pins = read_pins(args.requirements)
        if args.requirements == IMAGE_REQUIREMENTS:
            check_image_file()
        if args.resolve:
            print("\n".join(resolve_check(pins)))
        cuda = cuda_of(pins)
        ami = check_fit(cuda, None if args.ami == "none" else args.ami, args.instance_type)
        print(f"ok: torch {pins.get('torch')} needs CUDA {cuda[0]}.{cuda[1]}; {ami.name} "
              f"(driver {ami.driver}) runs CUDA {ami.cuda[0]}.{ami.cuda[1]}")  # fmt: skip
    except (MisfitError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
