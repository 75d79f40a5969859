"""Weights at start-up: Secrets Manager token -> Hugging Face download at pinned commits -> WEIGHTS_DIR
-> every file verified against the manifest (``integrity``) -> pipelines.

``ModelHolder`` runs this in a background thread so that ``/ping`` answers while it works, and
reports where it stands (``state``): ``loading``, ``ready`` (the default preset can run),
``failed``, or ``no_weights`` (no ``HF_TOKEN_ARN`` and the default preset's files are not in
``WEIGHTS_DIR``: the server runs, conversions get a 503 that lists the missing files). Each served
preset has its own state too (``preset_states``): one model missing or corrupt takes down only the
presets that run it.

The token is read once, handed to ``huggingface_hub`` and nowhere else: never logged, returned,
stored on an object that is printed, or written to disk by this code.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from stereocrafter.catalog import MODELS, models_with_files, needs_token
from stereocrafter.echo import get_logger
from stereocrafter.errors import (
    DeviceUnavailableError,
    EncoderUnavailableError,
    NotReadyError,
    StereoCrafterError,
    WeightsCorruptError,
    WeightsMissingError,
)
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.weights.integrity import check_file, expected_rows, read_lock, update_lock
from stereocrafter.weights.manifest import WeightFile, pinned

logger = get_logger("bentoml.stereocrafter.serving.weights")

TOKEN_KEYS = ("HF_TOKEN", "token", "hf_token", "HUGGING_FACE_HUB_TOKEN")


def read_hf_token(secret_arn: str, client: Any = None) -> str:
    """The Hugging Face token from Secrets Manager: the secret is the token itself, or JSON with
    one of ``TOKEN_KEYS``."""
    if client is None:
        import boto3

        from stereocrafter.serving.storage import client_config

        client = boto3.client("secretsmanager", config=client_config())
    response = client.get_secret_value(SecretId=secret_arn)
    raw = response.get("SecretString")
    if raw is None:
        raw = bytes(response["SecretBinary"]).decode("utf-8")
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as err:
            raise StereoCrafterError(f"secret {secret_arn} looks like JSON but does not parse") from err
        token = next((data[k] for k in TOKEN_KEYS if isinstance(data.get(k), str) and data[k].strip()), None)
        if token is None:
            raise StereoCrafterError(
                f"secret {secret_arn} is JSON without any of the keys {', '.join(TOKEN_KEYS)}"
            )
        raw = token.strip()
    if not raw:
        raise StereoCrafterError(f"secret {secret_arn} is empty")
    return str(raw)


def download_plan(
    presets: Sequence[str] = PRESET_NAMES,
    weights_dir: str | Path | None = None,
    manifest: Sequence[WeightFile] | None = None,
) -> dict[str, list[WeightFile]]:
    """repo id -> the manifest's files to fetch for the models of ``presets`` (``integrity.expected_rows``:
    pinned revisions, with what the lock in ``weights_dir`` recorded); no repo of a model no preset
    served runs."""
    plan: dict[str, list[WeightFile]] = {}
    for row in expected_rows(weights_dir or Path("/nonexistent"), models_with_files(presets), manifest):
        plan.setdefault(row.repo, []).append(row)
    return plan


def resolve_revision(repo: str, token: str | None, endpoint: str | None) -> str:
    """The commit ``main`` of ``repo`` points at now: asked once, for a repo the manifest pins no
    commit of (StereoCrafter's), then locked."""
    from huggingface_hub import HfApi

    sha = HfApi(endpoint=endpoint).model_info(repo, revision="main", token=token or False).sha
    if sha is None:
        raise StereoCrafterError(f"the Hub named no commit for {repo}")
    return str(sha)


def download_weights(
    weights_dir: str | Path,
    token: str | None,
    *,
    endpoint: str | None = None,
    max_workers: int = 8,
    presets: Sequence[str] = PRESET_NAMES,
    manifest: Sequence[WeightFile] | None = None,
    gated: bool = True,
) -> dict[str, str]:
    """Fetch the manifest's files of every model ``presets`` run into ``WEIGHTS_DIR/<repo id>/<path>``,
    each at its pinned commit (``hf_hub_download(revision=<40-hex>)``); a file already there with its
    known size and digest is not asked for at all. Returns model -> why its download failed (only the
    models that failed: one model's failure never stops the others'). ``gated`` False: the repos that
    need an accepted licence are skipped (no token). ``endpoint`` defaults to ``HF_ENDPOINT``
    (huggingface_hub's own setting) or the public Hub; ``token`` None: anonymous (not even a token
    saved on the machine is sent).
    """
    from concurrent.futures import ThreadPoolExecutor

    from huggingface_hub import hf_hub_download

    root = Path(weights_dir)
    failed: dict[str, str] = {}
    fetches: list[tuple[str, WeightFile, bool]] = []
    locked = {row.key: row.revision for row in read_lock(root)}
    for repo, rows in download_plan(presets, root, manifest).items():
        model = rows[0].model
        if not gated and MODELS[model].gated:
            continue
        # a file there that differs is fetched again, past huggingface_hub's own "up to date" record; so
        # is one of unknown digest that the lock says came from another commit (the manifest moved on)
        states = {row.key: check_file(root, row)[0] for row in rows}
        for row in rows:
            if states[row.key] == "new" and locked.get(row.key) not in (None, row.revision):
                states[row.key] = "corrupt"
        wanted = [row for row in rows if states[row.key] not in ("ok", "new")]
        if not wanted:
            continue
        try:
            revision = rows[0].revision or resolve_revision(repo, token, endpoint)
        except Exception as err:
            failed[model] = f"{type(err).__name__}: {_safe(err)}"
            continue
        if rows[0].revision is None:  # locked now: every later start asks for this commit
            update_lock(root, [pinned(row, revision) for row in rows])
            logger.info("weights of %s: no commit pinned in the manifest; locked at %s", repo, revision)
        fetches += [(revision, row, states[row.key] == "corrupt") for row in wanted]

    def fetch(item: tuple[str, WeightFile, bool]) -> None:
        revision, row, again = item
        if row.model in failed:
            return
        try:
            hf_hub_download(
                row.repo,
                row.path,
                revision=revision,
                local_dir=root / row.repo,
                token=token or False,
                endpoint=endpoint,
                force_download=again,
            )
        except Exception as err:
            failed.setdefault(row.model, f"{row.key}: {type(err).__name__}: {_safe(err)}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        list(pool.map(fetch, fetches))
    if fetches:
        logger.info("fetched %d weight files in %.1f s%s", len(fetches), time.perf_counter() - started,
                    f"; failed: {', '.join(sorted(failed))}" if failed else "")  # fmt: skip
    for model, reason in failed.items():
        logger.error("weights of %s not downloaded: %s", model, reason)
    return failed


class ModelHolder:
    """Loads the pipeline once, in the background, and tells the service whether it can convert."""

    def __init__(
        self,
        weights_dir: Path,
        hf_token_arn: str | None,
        load: Callable[[Path], Any],
        *,
        secrets_client: Any = None,
        presets: Sequence[str] = PRESET_NAMES,
        default_preset: str | None = None,
        offline: bool = False,
        manifest: Sequence[WeightFile] | None = None,
    ) -> None:
        self.weights_dir = weights_dir
        self.presets = tuple(presets)  # what to download for (``download_plan``)
        # /ping is 200 while this preset can run (the endpoint's STEREOCRAFTER_PRESET)
        self.default_preset = default_preset or self.presets[0]
        self.offline = offline  # HF_HUB_OFFLINE: never download, verify what is there
        self.manifest = manifest  # None: the published one (``manifest.PUBLISHED``)
        self._token_arn = hf_token_arn
        self._load = load
        self._secrets_client = secrets_client
        # ``state`` and ``pipeline`` change together under this lock, and ``require`` reads them
        # together under it: a request never sees "ready" with the pipeline already gone.
        self._lock = threading.Lock()
        self.state = "loading"
        self.detail = "starting"
        self.pipeline: Any = None
        self.missing: list[str] = []
        # Why the state is "failed", in words a caller may see (/ping); None: only the log knows.
        self.reason: str | None = None
        self._thread = threading.Thread(target=self._run, name="weights-loader", daemon=True)

    def start(self) -> ModelHolder:
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    @property
    def healthy(self) -> bool:
        """What /ping reports: true once the service can work, and when no weights are configured
        at all (the server is up; conversions answer 503)."""
        return self.state in ("ready", "no_weights")

    def mark_failed(self, reason: str) -> None:
        """The models cannot work any more (a poisoned CUDA context): /ping says 503 from now on,
        so the platform replaces this instance, and every request gets 503 at once."""
        with self._lock:
            self.pipeline = None
            self.state, self.detail, self.reason = "failed", reason, reason
        logger.error("marked failed: %s", reason)

    def require(self, preset: str | None = None) -> Any:
        """The pipeline, or the 503 saying why not: ``NotReadyError``/``WeightsMissingError`` for the
        whole service, ``PresetUnavailableError`` when ``preset``'s model is missing or corrupt here
        while other presets work."""
        with self._lock:
            state, pipeline, reason, detail = self.state, self.pipeline, self.reason, self.detail
        if pipeline is not None:
            unavailable = getattr(pipeline, "unavailable", {})
            if preset in unavailable:
                raise unavailable[preset].error(getattr(pipeline, "ready_presets", []))
            return pipeline
        if state == "no_weights":
            raise WeightsMissingError(self.missing, str(self.weights_dir))
        if state == "failed":
            # The reason (library messages, download URLs) stays in the service log, unless it is
            # one of ours and safe to tell (no CUDA device, a failed GPU).
            raise NotReadyError(reason or "the models failed to load; the service log has the reason")
        raise NotReadyError(f"models are not ready yet: {detail}")

    def preset_states(self) -> dict[str, dict[str, str]]:
        """Every served preset's state for /ping and the metrics: ``ready``, ``loading``, ``missing``,
        ``corrupt`` or ``failed``, with the model and the reason where it cannot run."""
        with self._lock:
            state, pipeline = self.state, self.pipeline
        if pipeline is None:
            whole = {"loading": "loading", "no_weights": "missing"}.get(state, "failed")
            return {preset: {"state": whole} for preset in self.presets}
        unavailable = getattr(pipeline, "unavailable", {})
        states: dict[str, dict[str, str]] = {}
        for preset in self.presets:
            why = unavailable.get(preset)
            states[preset] = (
                {"state": "ready"}
                if why is None
                else {"state": why.state, "model": why.model, "reason": why.detail}
            )
        return states

    def _download(self) -> None:
        """Fetch what the served presets need: with the token, every repo; without one, the missing
        files of public repos, only when no served preset needs a gated one; never offline."""
        if self.offline:
            logger.info("HF_HUB_OFFLINE is set: no download, verifying what is in %s", self.weights_dir)
            return
        if self._token_arn:
            self.detail = "reading the Hugging Face token"
            token = read_hf_token(self._token_arn, self._secrets_client)
            self.detail = "downloading weights"
            download_weights(self.weights_dir, token, presets=self.presets, manifest=self.manifest)
            del token
        elif not needs_token(self.presets):
            # Every repo of the served presets is public (no SVD): fetch what is missing without a
            # token (a complete WEIGHTS_DIR, e.g. the operator's own copy, is used as it is).
            self.detail = "downloading weights (public repos, no token)"
            logger.info(
                "HF_TOKEN_ARN is not set; the presets %s need public repos only: "
                "downloading what %s lacks without a token",
                ",".join(self.presets),
                self.weights_dir,
            )
            download_weights(
                self.weights_dir, None, presets=self.presets, manifest=self.manifest, gated=False
            )
        else:
            logger.info("HF_TOKEN_ARN is not set: no download, using what is in %s", self.weights_dir)

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            self._download()
            self.detail = "verifying and loading models"
            pipeline = self._load(self.weights_dir)
            _freeze_heap()
            unavailable = getattr(pipeline, "unavailable", {})
            why = unavailable.get(self.default_preset)
            with self._lock:
                self.pipeline = pipeline
                took = f"loaded in {time.perf_counter() - started:.1f} s"
                if why is None:
                    self.state, self.detail = "ready", took
                elif why.state == "missing" and not self._token_arn:
                    self.state, self.detail = (
                        "no_weights",
                        f"{took}; the default preset {self.default_preset}: {why.detail}",
                    )
                    self.missing = [why.detail]
                else:
                    reason = (
                        f"the default preset {self.default_preset} cannot run: "
                        f"{why.model} {why.state}: {why.detail}"
                    )
                    self.state, self.detail, self.reason = "failed", reason, reason
            ready = [p for p in self.presets if p not in unavailable]
            down = f"; unavailable: {', '.join(unavailable)}" if unavailable else ""
            logger.info("models ready in %.1f s; presets ready: %s%s", time.perf_counter() - started,
                        ", ".join(ready), down)  # fmt: skip
        except WeightsMissingError as err:
            if self._token_arn:
                self.state, self.detail = "failed", err.message
                logger.error("weights incomplete after the download: %s", err.message)
            else:
                self.state, self.detail, self.missing = "no_weights", err.message, err.missing
                logger.warning("serving without models: %s", err.message)
        except (DeviceUnavailableError, EncoderUnavailableError, WeightsCorruptError) as err:  # safe to tell
            self.state, self.detail, self.reason = "failed", err.message, err.message
            what = {DeviceUnavailableError: "device", EncoderUnavailableError: "encoder"}.get(
                type(err), "weights"
            )
            logger.error("no usable %s: %s", what, err.message)
        except Exception as err:
            self.state, self.detail = "failed", f"{type(err).__name__}: {_safe(err)}"
            logger.error("loading the models failed: %s", self.detail)


def _freeze_heap() -> None:
    """Move every object alive now (the models, torch, diffusers, BentoML: millions of them) out of
    the garbage collector's reach. A full collection would otherwise walk them all, holding the
    GIL for a large fraction of a second, which stalls the event loop that answers /ping; after
    this, a collection at a job's edge walks only what the job made."""
    gc.collect()
    gc.freeze()


def _safe(err: Exception) -> str:
    """An error's message, cut to one line (library messages can be long)."""
    text = str(err).strip().splitlines()
    return text[0][:300] if text else ""
