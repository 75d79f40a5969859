"""Weight files against the manifest: sizes always, digests where known, stamps that spare a restart
the hashing, digests trusted on first use and required after, tiny weights held to their own record."""

from __future__ import annotations

import gc
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

import stereocrafter.weights.integrity as integrity
from stereocrafter.weights.integrity import (
    LOCK_NAME,
    STAMPS,
    check_file,
    digest,
    expected_rows,
    read_lock,
    sha256_of,
    verify_models,
)
from stereocrafter.weights.manifest import PUBLISHED, TINY_WEIGHTS_MARKER, WeightFile

REPO = "owner/model"


def _row(path: str = "weights.bin", **kw: object) -> WeightFile:
    return WeightFile(**{"model": "vda-small", "repo": REPO, "revision": "a" * 40, "path": path, **kw})  # type: ignore[arg-type]


def _write(root: Path, data: bytes, path: str = "weights.bin") -> Path:
    file = root / REPO / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    return file


def test_a_file_with_other_bytes_is_named_with_both_digests(tmp_path: Path) -> None:
    file = _write(tmp_path, b"other bytes")
    expected = sha256_of(_write(tmp_path / "x", b"the published bytes"))
    state, sentence, _ = check_file(tmp_path, _row(size=11, sha256=expected))
    assert state == "corrupt"
    assert (
        f"{REPO}/weights.bin is not the published file: sha256 {sha256_of(file)}, expected {expected}"
        == sentence
    )


def test_a_size_that_differs_is_refused_without_trusting_anything(tmp_path: Path) -> None:
    _write(tmp_path, b"12345")
    state, sentence, _ = check_file(tmp_path, _row(size=6))
    assert state == "corrupt" and "5 bytes, expected 6" in sentence and "expected not known" in sentence


def test_the_digest_is_kept_in_a_stamp_and_recomputed_when_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = _write(tmp_path, b"x" * 1000)
    calls: list[Path] = []
    real = integrity.sha256_of
    monkeypatch.setattr(integrity, "sha256_of", lambda path: calls.append(Path(path)) or real(path))
    first = digest(tmp_path, f"{REPO}/weights.bin")
    assert digest(tmp_path, f"{REPO}/weights.bin") == first and len(calls) == 1  # the stamp answered
    assert (tmp_path / STAMPS / REPO / "weights.bin.json").is_file()
    file.write_bytes(b"y" * 1000)  # same size, another mtime
    assert digest(tmp_path, f"{REPO}/weights.bin") != first and len(calls) == 2


def test_without_a_place_for_stamps_every_start_hashes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write(tmp_path, b"data")
    (tmp_path / STAMPS).write_text("a file where the stamps' folder would be: like a read-only directory")
    calls: list[Path] = []
    real = integrity.sha256_of
    monkeypatch.setattr(integrity, "sha256_of", lambda path: calls.append(Path(path)) or real(path))
    assert digest(tmp_path, f"{REPO}/weights.bin") == digest(tmp_path, f"{REPO}/weights.bin")
    assert len(calls) == 2


def test_a_digest_the_manifest_lacks_is_recorded_once_and_required_after(tmp_path: Path) -> None:
    manifest = (_row(),)
    file = _write(tmp_path, b"first download")
    checks = verify_models(tmp_path, ["vda-small"], manifest)
    assert checks["vda-small"].state == "ok" and checks["vda-small"].recorded == [f"{REPO}/weights.bin"]
    (locked,) = read_lock(tmp_path)
    assert locked.sha256 == sha256_of(file) and locked.size == 14 and locked.revision == "a" * 40
    assert verify_models(tmp_path, ["vda-small"], manifest)["vda-small"].recorded == []
    file.write_bytes(b"a replacement!")  # the same size, other bytes: refused from now on
    check = verify_models(tmp_path, ["vda-small"], manifest)["vda-small"]
    assert check.state == "corrupt" and sha256_of(file) in check.message and locked.sha256 in check.message


def test_the_lock_never_replaces_what_the_manifest_knows(tmp_path: Path) -> None:
    published = sha256_of(_write(tmp_path / "p", b"published"))
    _write(tmp_path, b"an operator's")
    (tmp_path / LOCK_NAME).write_text(
        integrity.to_json([_row(size=13, sha256=sha256_of(tmp_path / REPO / "weights.bin"))])
    )
    (row,) = expected_rows(tmp_path, ["vda-small"], (_row(sha256=published),))
    assert row.sha256 == published
    assert verify_models(tmp_path, ["vda-small"], (_row(sha256=published),))["vda-small"].state == "corrupt"


def test_a_lock_of_another_revision_is_not_used(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / LOCK_NAME).write_text(integrity.to_json([_row(revision="b" * 40, size=3, sha256="c" * 64)]))
    (row,) = expected_rows(tmp_path, ["vda-small"], (_row(),))
    assert row.sha256 is None and row.size is None


def test_missing_files_are_listed_and_nothing_is_recorded(tmp_path: Path) -> None:
    check = verify_models(tmp_path, ["vda-small"], (_row(), _row("other.bin")))["vda-small"]
    assert check.state == "missing" and check.missing == [f"{REPO}/weights.bin", f"{REPO}/other.bin"]
    assert not (tmp_path / LOCK_NAME).exists()


def test_the_manifest_files_are_what_the_loaders_read(tmp_path: Path) -> None:
    """Empty files at the manifest's paths complete every component the stages resolve."""
    from stereocrafter.stages.registry import components_of

    for row in PUBLISHED:
        (tmp_path / row.repo / row.path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / row.repo / row.path).touch()
    assert [c.name for c in components_of(("reference", "clean")) if c.resolve(tmp_path) is None] == []


def test_tiny_weights_are_held_to_their_own_record(weights_copy: Path) -> None:
    rows = expected_rows(weights_copy, ["vda-small"])
    assert {row.revision for row in rows} != {r.revision for r in PUBLISHED if r.model == "vda-small"}
    assert any(row.path == TINY_WEIGHTS_MARKER for row in rows)
    assert verify_models(weights_copy, ["vda-small", "migan", "svd"])["svd"].state == "ok"
    (
        weights_copy / "stabilityai/stable-video-diffusion-img2vid-xt-1-1/scheduler/scheduler_config.json"
    ).write_text("{}")
    assert verify_models(weights_copy, ["svd"])["svd"].state == "corrupt"


def test_files_of_the_right_name_without_the_tiny_marker_are_never_loaded(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tiny files under the published names, unmarked and unrecorded: every model whose manifest
    knows a size or digest is refused by name before its loader runs; the service is never ready."""
    from functools import partial

    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.serving.weights import ModelHolder
    from stereocrafter.stages.migan import MiganStage
    from stereocrafter.stages.vda import VdaStage

    weights = tmp_path / "weights"
    shutil.copytree(
        tiny_weights, weights, ignore=shutil.ignore_patterns(TINY_WEIGHTS_MARKER, LOCK_NAME, STAMPS)
    )
    loaded: list[str] = []
    for stage in (VdaStage, MiganStage):
        monkeypatch.setattr(stage, "load", classmethod(lambda cls, *a, **k: loaded.append(cls.name)))
    presets = ("turbo", "instant", "clean")
    holder = ModelHolder(weights, None, partial(load_stereo_pipeline, presets=presets), presets=presets,
                         default_preset="instant").start()  # fmt: skip
    holder.wait(120)
    gc.unfreeze()
    assert loaded == [] and holder.state == "failed" and not holder.healthy
    vda = "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"
    size = (weights / vda).stat().st_size
    assert (
        holder.reason is not None
        and f"{vda} is not the published file: {size} bytes, expected 116440756" in holder.reason
    )
    assert f"sha256 {sha256_of(weights / vda)}, expected 13379300b739e659" in holder.reason
    assert "migan_pipeline_v2.onnx is not the published file" in holder.reason
    assert {s["state"] for s in holder.preset_states().values()} == {"failed"}


def test_an_operators_migan_pt_is_taken_only_with_the_published_digest(
    weights_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import stereocrafter.weights.manifest as manifest
    from stereocrafter.stages.migan import generator_file
    from stereocrafter.testing.weights import MIGAN_REPO, TINY_MIGAN, random_migan

    folder = weights_copy / MIGAN_REPO
    pt = folder / "migan_512_places2.pt"
    torch.save(random_migan(TINY_MIGAN, seed=9).state_dict(), pt)
    (folder / "migan_pipeline_v2.onnx").unlink()
    assert verify_models(weights_copy, ["migan"])["migan"].state == "missing"  # another digest: not taken
    published = replace(manifest.MIGAN_PT, size=pt.stat().st_size, sha256=sha256_of(pt))
    monkeypatch.setitem(manifest.ALTERNATIVES, "migan", (published,))
    monkeypatch.setattr("stereocrafter.stages.migan.MIGAN_PT", published)
    assert verify_models(weights_copy, ["migan"])["migan"].state == "ok"
    assert generator_file(weights_copy) == pt
