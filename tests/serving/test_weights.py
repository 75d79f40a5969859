"""Token from Secrets Manager (moto server) and the weight download from a local Hub-compatible server."""

from __future__ import annotations

import gc
import json
import re
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from stereocrafter.errors import (
    NotReadyError,
    PresetUnavailableError,
    StereoCrafterError,
    WeightsMissingError,
)
from stereocrafter.serving.weights import ModelHolder, download_plan, download_weights, read_hf_token
from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline
from stereocrafter.testing.hub import HubServer
from stereocrafter.weights.integrity import read_lock
from stereocrafter.weights.manifest import WeightFile

TOKEN = "hf_test_secret_0123456789"


@pytest.mark.parametrize(
    "secret",
    [TOKEN, f"  {TOKEN}\n", json.dumps({"HF_TOKEN": TOKEN}), json.dumps({"token": TOKEN, "other": 1})],
)
def test_token_from_secrets_manager(aws, secret: str) -> None:
    client = aws("secretsmanager")
    arn = client.create_secret(Name="hf", SecretString=secret)["ARN"]
    assert read_hf_token(arn, client) == TOKEN


@pytest.mark.parametrize(
    ("secret", "message"), [(json.dumps({"user": "x"}), "without any of the keys"), ("{", "does not parse")]
)
def test_bad_secrets(aws, secret: str, message: str) -> None:
    client = aws("secretsmanager")
    arn = client.create_secret(Name="hf", SecretString=secret)["ARN"]
    with pytest.raises(StereoCrafterError, match=message) as caught:
        read_hf_token(arn, client)
    assert TOKEN not in str(caught.value)


def test_plan_fetches_the_manifest_files_at_pinned_commits() -> None:
    plan = download_plan()
    assert set(plan) == {
        "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        "tencent/DepthCrafter",
        "TencentARC/StereoCrafter",
        "depth-anything/Video-Depth-Anything-Small",
        "andraniksargsyan/migan",
    }
    assert [row.path for row in plan["andraniksargsyan/migan"]] == ["migan_pipeline_v2.onnx"]
    assert set(download_plan(["instant"])) == {"depth-anything/Video-Depth-Anything-Small"}
    assert [row.path for row in plan["depth-anything/Video-Depth-Anything-Small"]] == [
        "video_depth_anything_vits.pth"
    ]
    svd = [row.path for row in plan["stabilityai/stable-video-diffusion-img2vid-xt-1-1"]]
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in svd and not any(
        p.startswith("unet/") for p in svd
    )
    for repo, rows in plan.items():  # StereoCrafter's commit was seen pinned nowhere: locked at first use
        pinned = repo != "TencentARC/StereoCrafter"
        assert all(len(row.revision or "") == 40 if pinned else row.revision is None for row in rows), repo


@pytest.fixture
def tiny_rows(tiny_weights: Path) -> tuple[WeightFile, ...]:
    return read_lock(tiny_weights)


@pytest.fixture
def hub_env(tiny_weights: Path):
    with HubServer(tiny_weights, TOKEN) as hub:
        yield hub


def test_download_into_the_layout_then_load(hub_env: HubServer, tmp_path: Path, tiny_rows) -> None:
    target = tmp_path / "weights"
    assert download_weights(target, TOKEN, endpoint=hub_env.url, manifest=tiny_rows) == {}
    assert set(hub_env.auth_headers) == {f"Bearer {TOKEN}"}
    fetched = sorted(hub_env.downloads)
    assert "tencent/DepthCrafter/diffusion_pytorch_model.safetensors" in fetched
    assert not any("model_index.json" in f for f in fetched)  # only what the manifest names
    assert {revision for _, revision in hub_env.revisions} == {row.revision for row in tiny_rows}
    pipe = load_depth_pipeline(target)
    assert pipe.unet.config.in_channels == 8
    asked = len(hub_env.requests)
    assert download_weights(target, TOKEN, endpoint=hub_env.url, manifest=tiny_rows) == {}
    assert len(hub_env.requests) == asked  # every file there and verified: not one request


def test_a_file_that_differs_is_fetched_again(hub_env: HubServer, tmp_path: Path, tiny_rows) -> None:
    from stereocrafter.weights.integrity import check_file

    target = tmp_path / "w"
    assert (
        download_weights(target, TOKEN, endpoint=hub_env.url, manifest=tiny_rows, presets=["instant"]) == {}
    )
    (row,) = [r for r in tiny_rows if r.path == "video_depth_anything_vits.pth"]
    data = bytearray((target / row.key).read_bytes())
    data[100] ^= 1  # the same size, one bit off (huggingface_hub's own record still says "up to date")
    (target / row.key).write_bytes(bytes(data))
    assert check_file(target, row)[0] == "corrupt"
    assert (
        download_weights(target, TOKEN, endpoint=hub_env.url, manifest=tiny_rows, presets=["instant"]) == {}
    )
    assert check_file(target, row)[0] == "ok" and hub_env.downloads.count(row.key) == 2


def test_a_revision_the_hub_lacks_fails_only_its_model(hub_env: HubServer, tmp_path: Path, tiny_rows) -> None:
    moved = tuple(replace(r, revision="f" * 40) if r.model == "migan" else r for r in tiny_rows)
    failed = download_weights(tmp_path / "w", TOKEN, endpoint=hub_env.url, manifest=moved, presets=["clean"])
    assert set(failed) == {"migan"} and ("RevisionNotFound" in failed["migan"] or "404" in failed["migan"])
    assert (
        tmp_path / "w" / "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"
    ).is_file()


class Recorder:
    """huggingface_hub's download functions replaced: every call recorded, no network; a download
    writes nothing (the files stay missing)."""

    def __init__(self) -> None:
        self.downloads: list[tuple[str, str, str | None]] = []
        self.infos: list[tuple[str, str | None]] = []

    def hf_hub_download(
        self, repo_id: str, filename: str, *, revision: str | None = None, **_: object
    ) -> str:
        self.downloads.append((repo_id, filename, revision))
        return ""

    def model_info(self, repo_id: str, *, revision: str | None = None, **_: object) -> object:
        self.infos.append((repo_id, revision))
        return SimpleNamespace(sha="c" * 40)


# What each repo is known to hold (shared/reference/weights.md): MI-GAN's holds the ONNX pipelines only.
REPO_HOLDS = {"andraniksargsyan/migan": {"migan_pipeline_v2.onnx", "migan.onnx"}}


@pytest.mark.parametrize("preset", ["reference", "fast", "turbo", "instant", "clean"])
def test_every_download_names_a_commit_and_a_file_the_repo_holds(
    preset: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    recorder = Recorder()
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", recorder.hf_hub_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", recorder.model_info)
    failed = download_weights(tmp_path, "hf_token", presets=[preset])
    assert failed == {} and recorder.downloads
    for repo, filename, revision in recorder.downloads:
        assert revision is not None and re.fullmatch(r"[0-9a-f]{40}", revision), (repo, filename, revision)
        assert filename in REPO_HOLDS.get(repo, {filename}), (repo, filename)
    # the one question that names no commit: which commit StereoCrafter's main is, asked once, then locked
    expected_infos = (
        [("TencentARC/StereoCrafter", "main")] if preset in ("reference", "fast", "turbo") else []
    )
    assert recorder.infos == expected_infos
    if expected_infos:
        assert {r for _, f, r in recorder.downloads if f.startswith("unet_diffusers/")} == {"c" * 40}
        download_weights(tmp_path, "hf_token", presets=[preset])
        assert recorder.infos == expected_infos  # the lock pins it now


def test_wrong_token_fails_every_model_and_says_so(hub_env: HubServer, tmp_path: Path, tiny_rows) -> None:
    failed = download_weights(tmp_path / "w", "hf_wrong", endpoint=hub_env.url, manifest=tiny_rows)
    assert set(failed) == {"depthcrafter", "vda-small", "stereocrafter", "migan", "svd"}
    assert all("401" in reason or "credentials" in reason.lower() for reason in failed.values()), failed
    assert "hf_wrong" not in str(failed)


def test_holder_states(tiny_weights: Path, tmp_path: Path) -> None:
    empty = ModelHolder(tmp_path, None, load_depth_pipeline).start()
    empty.wait(60)
    assert empty.state == "no_weights" and empty.healthy
    with pytest.raises(WeightsMissingError, match=r"5 components \(4 in stabilityai/") as caught:
        empty.require()
    assert any("vae/config.json" in item for item in caught.value.missing)

    ready = ModelHolder(tiny_weights, None, load_depth_pipeline).start()
    ready.wait(120)
    assert ready.state == "ready" and ready.healthy and ready.require() is ready.pipeline
    # after loading, the heap is frozen: job-end collections do not walk the models and libraries
    assert gc.get_freeze_count() > 10_000
    gc.unfreeze()  # (the rest of the test session collects as usual)

    def broken(path: Path) -> None:
        raise RuntimeError("CUDA out of memory")

    failed = ModelHolder(tiny_weights, None, broken).start()
    failed.wait(60)
    assert failed.state == "failed" and not failed.healthy
    with pytest.raises(NotReadyError, match="failed to load") as caught:
        failed.require()
    # the reason stays in the holder (and the log), not in what callers are told
    assert "CUDA out of memory" not in caught.value.message and "CUDA out of memory" in failed.detail


def test_holder_downloads_with_the_secret(
    aws,
    hub_env: HubServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_rows,
) -> None:
    import stereocrafter.serving.weights as weights

    original = weights.download_weights
    monkeypatch.setattr(
        weights, "download_weights", lambda d, t, **kw: original(d, t, endpoint=hub_env.url, **kw)
    )
    client = aws("secretsmanager")
    arn = client.create_secret(Name="hf", SecretString=json.dumps({"HF_TOKEN": TOKEN}))["ARN"]
    holder = ModelHolder(
        tmp_path / "w", arn, load_depth_pipeline, secrets_client=client, manifest=tiny_rows
    ).start()
    holder.wait(120)
    assert holder.state == "ready", holder.detail
    assert TOKEN not in holder.detail


class SlowStateHolder(ModelHolder):
    """A holder whose ``state``, read by a request thread, then waits (up to 0.5 s) for
    ``mark_failed`` to finish: the thread switch that, in the unlocked version, let a request
    see "ready" and then a pipeline already cleared. CPython switches threads only at calls and
    loop edges, so without this the window between the two reads is almost never hit."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        import threading

        self.reader: object = None  # the thread whose reads are slowed
        self.failed = threading.Event()
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def state(self) -> str:
        import threading

        value = self._state
        if threading.current_thread() is self.reader:
            self.failed.wait(0.5)
        return value

    @state.setter
    def state(self, value: str) -> None:
        self._state = value

    def mark_failed(self, reason: str) -> None:
        super().mark_failed(reason)
        self.failed.set()


def test_require_never_sees_ready_without_its_pipeline(tmp_path: Path) -> None:
    """``mark_failed`` (a sticky CUDA error in one slot's job) runs while another request calls
    ``require()``: it must get the ready pipeline or the 503 ``NotReadyError``, never ``None``
    (which became a 500 further on)."""
    import threading

    pipeline = object()
    holder = SlowStateHolder(tmp_path, None, lambda _: pipeline).start()
    holder.wait(30)
    gc.unfreeze()
    assert holder.state == "ready"
    got: list[object] = []

    def ask() -> None:
        try:
            got.append(holder.require())
        except NotReadyError as err:
            got.append(err)

    reader = threading.Thread(target=ask)
    holder.reader = reader
    reader.start()
    time.sleep(0.05)  # the reader is inside require(), reading the state
    holder.mark_failed("a CUDA error poisoned the GPU context")
    reader.join(5)
    assert len(got) == 1
    assert got[0] is pipeline or isinstance(got[0], NotReadyError), f"require() returned {got[0]!r}"
    with pytest.raises(NotReadyError, match="poisoned"):
        holder.require()


def test_a_changed_migan_file_is_refused_before_loading_and_takes_down_only_clean(weights_copy: Path) -> None:
    from functools import partial

    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.testing.weights import MIGAN_REPO
    from stereocrafter.weights.integrity import sha256_of

    onnx_file = weights_copy / MIGAN_REPO / "migan_pipeline_v2.onnx"
    expected = sha256_of(onnx_file)
    data = bytearray(onnx_file.read_bytes())
    data[-100] ^= 0xFF  # the same size, other bytes
    onnx_file.write_bytes(bytes(data))
    (weights_copy / MIGAN_REPO / "migan_512_places2.from-onnx.safetensors").unlink(missing_ok=True)
    presets = ("instant", "clean")
    load = partial(load_stereo_pipeline, presets=presets)
    holder = ModelHolder(weights_copy, None, load, presets=presets, default_preset="instant").start()
    holder.wait(120)
    try:
        assert holder.state == "ready" and holder.healthy  # the default preset runs
        states = holder.preset_states()
        assert states["instant"] == {"state": "ready"}
        assert states["clean"]["state"] == "corrupt" and states["clean"]["model"] == "migan"
        reason = states["clean"]["reason"]
        assert "andraniksargsyan/migan/migan_pipeline_v2.onnx" in reason and expected in reason
        assert sha256_of(onnx_file) in reason
        assert not (
            weights_copy / MIGAN_REPO / "migan_512_places2.from-onnx.safetensors"
        ).exists()  # never read
        with pytest.raises(PresetUnavailableError, match="preset clean cannot run") as caught:
            holder.require("clean")
        assert caught.value.status == 503 and "ready here: instant" in caught.value.message
        assert holder.require("instant") is holder.pipeline
    finally:
        gc.unfreeze()

    alone = ModelHolder(
        weights_copy, None, partial(load_stereo_pipeline, presets=("clean",)), presets=("clean",)
    ).start()
    alone.wait(60)
    assert alone.state == "failed" and not alone.healthy  # nothing it serves can run
    assert alone.reason is not None and "migan_pipeline_v2.onnx is not the published file" in alone.reason


def test_without_a_token_only_public_repos_are_fetched_and_only_what_is_missing(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_rows
) -> None:
    from functools import partial

    from stereocrafter.pipeline.loading import load_stereo_pipeline

    public = ("depth-anything/Video-Depth-Anything-Small", "andraniksargsyan/migan")
    with HubServer(tiny_weights, TOKEN, public=public) as hub:
        import stereocrafter.serving.weights as weights

        # what HF_ENDPOINT sets in a service process (huggingface_hub reads it at import)
        monkeypatch.setattr(weights, "download_weights", partial(weights.download_weights, endpoint=hub.url))
        try:
            presets = ("instant", "clean")
            load = partial(load_stereo_pipeline, presets=presets, manifest=tiny_rows)
            holder = ModelHolder(tmp_path / "w", None, load, presets=presets, manifest=tiny_rows).start()
            holder.wait(120)
            assert holder.state == "ready", holder.detail
            assert set(hub.auth_headers) == {""} and len(hub.downloads) == 4  # 2 files + 2 markers
            again = ModelHolder(tmp_path / "w", None, load, presets=presets, manifest=tiny_rows).start()
            again.wait(120)
            assert again.state == "ready" and len(hub.downloads) == 4  # complete: nothing fetched
            gated = ModelHolder(tmp_path / "w", None, load_depth_pipeline, presets=("turbo",)).start()
            gated.wait(60)
            assert gated.state == "no_weights" and len(hub.downloads) == 4  # SVD is gated: no try
        finally:
            gc.unfreeze()


def test_offline_never_downloads(tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import stereocrafter.serving.weights as weights

    def refuse(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("downloaded while offline")

    monkeypatch.setattr(weights, "download_weights", refuse)
    holder = ModelHolder(tmp_path, None, load_depth_pipeline, presets=("instant",), offline=True).start()
    holder.wait(60)
    assert holder.state == "no_weights"


def test_a_file_recorded_at_another_commit_is_fetched_at_the_new_one(
    hub_env: HubServer, tmp_path: Path, tiny_rows
) -> None:
    """The manifest moved to another commit of a repo whose digests it does not know: the file the
    lock recorded at the old commit is fetched again, and recorded at the new one."""
    from stereocrafter.weights.integrity import verify_models

    unknown = tuple(replace(r, size=None, sha256=None) for r in tiny_rows)
    target = tmp_path / "w"
    assert download_weights(target, TOKEN, endpoint=hub_env.url, manifest=unknown, presets=["instant"]) == {}
    assert verify_models(target, ["vda-small"], unknown)["vda-small"].recorded  # trusted on first use
    vda = "depth-anything/Video-Depth-Anything-Small/video_depth_anything_vits.pth"
    old = [r for r in read_lock(target) if r.key == vda]
    assert old and old[0].revision == hub_env.commit("depth-anything/Video-Depth-Anything-Small")
    lock = target / "weights.lock.json"
    lock.write_text(lock.read_text().replace(old[0].revision or "", "e" * 40))  # recorded at another commit
    before = hub_env.downloads.count(vda)
    assert download_weights(target, TOKEN, endpoint=hub_env.url, manifest=unknown, presets=["instant"]) == {}
    assert hub_env.downloads.count(vda) == before + 1
