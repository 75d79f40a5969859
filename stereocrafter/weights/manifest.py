"""The weights manifest: every file the service downloads, as data (no torch, no network here).

One row per file: the model it belongs to (``catalog.MODELS``), its Hugging Face repo, the commit
it is pinned at, its path in the repo, and its size and SHA-256 where they are known. Every fact
comes from ``shared/reference/weights.md``, which says how sure each one is; ``source`` keeps that
note beside the value. Where a fact could not be established without a network it is ``None``:

- a ``revision`` of ``None`` (StereoCrafter's repo: no commit was seen pinned anywhere) is resolved
  once, at the first download, to the commit ``main`` then points at, and written to the lock
  (``integrity.LOCK_NAME``); every later download asks for that commit;
- a ``sha256`` or ``size`` of ``None`` is recorded by the first verified download (trust on first
  use) in the same lock, and every later start must match it.

The same schema (``to_json``/``from_json``) is the lock file in ``WEIGHTS_DIR``, the manifest an S3
mirror keeps beside its files, an operator's own manifest (``STEREOCRAFTER_WEIGHTS_MANIFEST``) and
the tiny test weights' record of themselves.

MI-GAN: the authors publish their PyTorch state dict on Google Drive only; the Hugging Face repo their
README links holds the ONNX pipelines, whose ``model`` submodule is the generator. The service
downloads ``migan_pipeline_v2.onnx`` and converts the generator's tensors back to the state dict
(``models.migan_onnx``). An operator's own copy of the authors' ``migan_512_places2.pt`` is accepted
too, when its digest is ``MIGAN_PT``'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

# Written by stereocrafter.testing.weights next to tiny random weights (at the root and in each repo
# folder), so nothing presents their output as a real conversion.
TINY_WEIGHTS_MARKER = "TINY-RANDOM-WEIGHTS.txt"

FORMAT = 1
_COMMIT = re.compile(r"[0-9a-f]{40}")
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class WeightFile:
    """One file of one model at one commit of its repo."""

    model: str  # the catalog.MODELS name
    repo: str
    revision: str | None  # a 40-hex commit; None: resolved at the first download and locked
    path: str  # relative to the repo root, "/"-separated
    size: int | None = None  # bytes
    sha256: str | None = None
    source: str = ""  # how the values are known (shared/reference/weights.md)

    @property
    def key(self) -> str:
        """Where the file lives under ``WEIGHTS_DIR``: ``<repo>/<path>``."""
        return f"{self.repo}/{self.path}"

    def check(self) -> WeightFile:
        """This row, or ``ValueError`` naming what is malformed (a revision that is not a 40-hex
        commit, a digest that is not 64 hex digits, a path that climbs out of its folder)."""
        if self.revision is not None and not _COMMIT.fullmatch(self.revision):
            raise ValueError(f"{self.key}: revision {self.revision!r} is not a 40-hex commit")
        if self.sha256 is not None and not _DIGEST.fullmatch(self.sha256):
            raise ValueError(f"{self.key}: sha256 {self.sha256!r} is not 64 lower-case hex digits")
        if self.size is not None and self.size < 0:
            raise ValueError(f"{self.key}: size {self.size} is negative")
        parts = [*self.repo.split("/"), *self.path.split("/")]
        if len(self.repo.split("/")) != 2 or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"{self.key}: not a <owner>/<name> repo and a relative path")
        return self


# The published files, at the commits seen pinned (shared/reference/weights.md, 2026-12-07).
_VDA = "depth-anything/Video-Depth-Anything-Small"
_DEPTHCRAFTER = "tencent/DepthCrafter"
_STEREOCRAFTER = "TencentARC/StereoCrafter"
_SVD = "stabilityai/stable-video-diffusion-img2vid-xt-1-1"
_MIGAN = "andraniksargsyan/migan"
_SVD_REVISION = "043843887ccd51926e3efed36270444a838e7861"
_SVD_SOURCE = "files and sizes: high (several downloaders); revision: medium (most pinned)"

PUBLISHED: tuple[WeightFile, ...] = (
    WeightFile("vda-small", _VDA, "256875362cff76724b920335dfb4b29dd611f66e", "video_depth_anything_vits.pth",
               116_440_756, "13379300b739e659f076a59d52e9801bd8d38c541a7e71f73bbca4dcfb013609",
               "high: the project's get_weights.sh; about nine independent pins of the digest"),
    WeightFile("depthcrafter", _DEPTHCRAFTER, "f2207fa67e799d3cac41b0a051bb051401137a5b", "config.json",
               source="layout high (the project's code); recorded at the first download"),
    WeightFile("depthcrafter", _DEPTHCRAFTER, "f2207fa67e799d3cac41b0a051bb051401137a5b",
               "diffusion_pytorch_model.safetensors", None,
               "48feba12ce91f2ba2e7d3853bfcdd50ad45a4980be227f43f5add28baa451f94",
               "layout high; digest medium (one peer's pin at this revision)"),
    WeightFile("stereocrafter", _STEREOCRAFTER, None, "unet_diffusers/config.json",
               source="layout high (inpainting_inference.py); no revision seen pinned: locked at first use"),
    WeightFile("stereocrafter", _STEREOCRAFTER, None, "unet_diffusers/diffusion_pytorch_model.safetensors",
               source="layout high; about 3.05 GB; no revision or digest seen: locked at first download"),
    WeightFile("svd", _SVD, _SVD_REVISION, "vae/config.json", 607, source=_SVD_SOURCE),
    WeightFile("svd", _SVD, _SVD_REVISION, "vae/diffusion_pytorch_model.fp16.safetensors", 195_531_910,
               source=_SVD_SOURCE),
    WeightFile("svd", _SVD, _SVD_REVISION, "image_encoder/config.json", 685, source=_SVD_SOURCE),
    WeightFile("svd", _SVD, _SVD_REVISION, "image_encoder/model.fp16.safetensors", 1_264_217_240,
               source=_SVD_SOURCE),
    WeightFile("svd", _SVD, _SVD_REVISION, "feature_extractor/preprocessor_config.json", 518,
               source=_SVD_SOURCE),
    WeightFile("svd", _SVD, _SVD_REVISION, "scheduler/scheduler_config.json", 533, source=_SVD_SOURCE),
    WeightFile("migan", _MIGAN, "406830d0fa60666da0071c342ad2fbc8f30c5c64", "migan_pipeline_v2.onnx",
               28_079_181, "6f1f3530a1a2324b19752018ce756088b07973cda8d7d890034ace5c8a48c40b",
               "high: many pins; the repo holds no .pt (MI-GAN's README: Google Drive only)"),
)  # fmt: skip

# The authors' PyTorch state dict (Google Drive only): accepted when an operator puts it in WEIGHTS_DIR
# beside the ONNX file's folder and its digest is this one (one third party's pin: medium).
MIGAN_PT = WeightFile(
    "migan", _MIGAN, None, "migan_512_places2.pt", 29_553_256,
    "1d6087eee0aac8923ad2606be5d8caeb4824d3e4de331995e420c74e124a466a",
    "medium: one third party's gdown pin of the authors' Drive file",
)  # fmt: skip


# Files accepted in place of a model's manifest files when all of them are there and verify.
ALTERNATIVES: dict[str, tuple[WeightFile, ...]] = {"migan": (MIGAN_PT,)}


def files_of(manifest: Iterable[WeightFile], models: Iterable[str]) -> list[WeightFile]:
    """The rows of ``models``, in manifest order."""
    wanted = set(models)
    return [row for row in manifest if row.model in wanted]


def to_json(rows: Sequence[WeightFile]) -> str:
    """The manifest as JSON text (one object per file; ``source`` kept)."""
    return json.dumps({"format": FORMAT, "files": [asdict(row) for row in rows]}, indent=2) + "\n"


def from_json(text: str, where: str = "manifest") -> tuple[WeightFile, ...]:
    """Rows from ``to_json``'s text; ``ValueError`` naming ``where`` and what is wrong."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{where} is not JSON ({err.msg} at line {err.lineno})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("files"), list):
        raise ValueError(f"{where} is not a weights manifest of format {FORMAT}")
    rows = []
    fields = set(WeightFile.__dataclass_fields__)
    for number, item in enumerate(data["files"]):
        if not isinstance(item, dict) or not {"model", "repo", "revision", "path"} <= set(item):
            raise ValueError(f"{where}: file {number} lacks model, repo, revision or path")
        unknown = set(item) - fields
        if unknown:
            raise ValueError(f"{where}: file {number} has unknown fields {sorted(unknown)}")
        try:
            rows.append(WeightFile(**item).check())
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
    return tuple(rows)


def pinned(row: WeightFile, revision: str) -> WeightFile:
    """``row`` at ``revision`` (a resolved commit)."""
    return replace(row, revision=revision).check()
