"""Token from Secrets Manager (moto server) and the weight download from a local Hub-compatible server."""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import pytest
import torch

from stereocrafter.errors import NotReadyError, StereoCrafterError, WeightsMissingError
from stereocrafter.serving.weights import ModelHolder, download_plan, download_weights, read_hf_token
from stereocrafter.stages.depthcrafter import load_pipeline as load_depth_pipeline
from stereocrafter.testing.hub import HubServer

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


def test_plan_fetches_only_what_the_loaders_read() -> None:
    plan = download_plan()
    assert set(plan) == {
        "stabilityai/stable-video-diffusion-img2vid-xt-1-1",
        "tencent/DepthCrafter",
        "TencentARC/StereoCrafter",
        "depth-anything/Video-Depth-Anything-Small",
        "andraniksargsyan/migan",
    }
    assert plan["andraniksargsyan/migan"][1:] == ["migan_512_places2.pt"]
    assert set(download_plan(["instant"])) == {"depth-anything/Video-Depth-Anything-Small"}
    assert plan["depth-anything/Video-Depth-Anything-Small"][1:] == ["video_depth_anything_vits.pth"]
    svd = plan["stabilityai/stable-video-diffusion-img2vid-xt-1-1"]
    assert "vae/diffusion_pytorch_model.fp16.safetensors" in svd and not any(
        p.startswith("unet/") for p in svd
    )


@pytest.fixture
def hub_env(tiny_weights: Path):
    with HubServer(tiny_weights, TOKEN) as hub:
        yield hub


def test_download_into_the_layout_then_load(hub_env: HubServer, tmp_path: Path) -> None:
    target = tmp_path / "weights"
    download_weights(target, TOKEN, endpoint=hub_env.url)
    assert set(hub_env.auth_headers) == {f"Bearer {TOKEN}"}
    fetched = sorted(hub_env.downloads)
    assert "tencent/DepthCrafter/diffusion_pytorch_model.safetensors" in fetched
    assert not any("model_index.json" in f for f in fetched)  # only what the loaders read
    pipe = load_depth_pipeline(target)
    assert pipe.unet.config.in_channels == 8
    before = len(hub_env.downloads)
    download_weights(target, TOKEN, endpoint=hub_env.url)  # complete files are not fetched again
    assert len(hub_env.downloads) == before


def test_wrong_token_fails(hub_env: HubServer, tmp_path: Path) -> None:
    with pytest.raises(Exception) as caught:
        download_weights(tmp_path / "w", "hf_wrong", endpoint=hub_env.url)
    assert (
        "401" in str(caught.value)
        or "Invalid" in str(caught.value)
        or "credentials" in str(caught.value).lower()
    )


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
) -> None:
    import stereocrafter.serving.weights as weights

    original = weights.download_weights
    monkeypatch.setattr(
        weights, "download_weights", lambda d, t, **kw: original(d, t, endpoint=hub_env.url, **kw)
    )
    client = aws("secretsmanager")
    arn = client.create_secret(Name="hf", SecretString=json.dumps({"HF_TOKEN": TOKEN}))["ARN"]
    holder = ModelHolder(tmp_path / "w", arn, load_depth_pipeline, secrets_client=client).start()
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


def test_a_corrupt_migan_file_fails_the_start_and_says_why(weights_copy: Path) -> None:
    from functools import partial

    from stereocrafter.pipeline.loading import load_stereo_pipeline
    from stereocrafter.testing.weights import MIGAN_REPO

    state = torch.load(weights_copy / MIGAN_REPO / "migan_512_places2.pt", weights_only=True)
    del state["synthesis.b16.conv2.noise_const"]
    torch.save(state, weights_copy / MIGAN_REPO / "migan_512_places2.pt")
    load = partial(load_stereo_pipeline, presets=("clean",))
    holder = ModelHolder(weights_copy, None, load, presets=("clean",)).start()  # complete: no download
    holder.wait(120)
    assert holder.state == "failed" and not holder.healthy
    assert holder.reason is not None and "the migan weights" in holder.reason  # what /ping says
    assert "missing keys ['synthesis.b16.conv2.noise_const']" in holder.reason
    with pytest.raises(NotReadyError, match="missing keys"):
        holder.require()


def test_without_a_token_only_public_repos_are_fetched_and_only_what_is_missing(
    tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functools import partial

    from stereocrafter.pipeline.loading import load_stereo_pipeline

    public = ("depth-anything/Video-Depth-Anything-Small", "andraniksargsyan/migan")
    with HubServer(tiny_weights, TOKEN, public=public) as hub:
        import stereocrafter.serving.weights as weights

        # what HF_ENDPOINT sets in a service process (huggingface_hub reads it at import)
        monkeypatch.setattr(weights, "download_weights", partial(weights.download_weights, endpoint=hub.url))
        try:
            load = partial(load_stereo_pipeline, presets=("instant", "clean"))
            holder = ModelHolder(tmp_path / "w", None, load, presets=("instant", "clean")).start()
            holder.wait(120)
            assert holder.state == "ready", holder.detail
            assert set(hub.auth_headers) == {""} and len(hub.downloads) == 4  # 2 files + 2 markers
            again = ModelHolder(tmp_path / "w", None, load, presets=("instant", "clean")).start()
            again.wait(120)
            assert again.state == "ready" and len(hub.downloads) == 4  # complete: nothing fetched
            gated = ModelHolder(tmp_path / "w", None, load_depth_pipeline, presets=("turbo",)).start()
            gated.wait(60)
            assert gated.state == "no_weights" and len(hub.downloads) == 4  # SVD is gated: no try
        finally:
            gc.unfreeze()
