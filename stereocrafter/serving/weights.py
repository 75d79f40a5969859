"""Weights at start-up: Secrets Manager token -> Hugging Face download -> WEIGHTS_DIR -> pipelines.

``ModelHolder`` runs this in a background thread so that ``/ping`` answers while it works, and
reports where it stands (``state``): ``loading``, ``ready``, ``failed``, or ``no_weights`` (no
``HF_TOKEN_ARN`` and nothing usable in ``WEIGHTS_DIR``: the server runs, conversions get a 503
that lists the missing files).

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

from stereocrafter.catalog import needs_token
from stereocrafter.echo import get_logger
from stereocrafter.errors import (
    DeviceUnavailableError,
    EncoderUnavailableError,
    NotReadyError,
    StereoCrafterError,
    WeightsCorruptError,
    WeightsMissingError,
)
from stereocrafter.pipeline.loading import missing_files
from stereocrafter.presets import PRESET_NAMES
from stereocrafter.stages.components import TINY_WEIGHTS_MARKER
from stereocrafter.stages.registry import components_of

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


def download_plan(presets: Sequence[str] = PRESET_NAMES) -> dict[str, list[str]]:
    """repo id -> the file patterns to fetch: exactly what the loaders read for the models of
    ``presets`` (``loading.components_of``); no repo of a model no preset served runs."""
    plan: dict[str, list[str]] = {}
    for component in components_of(presets):
        patterns = plan.setdefault(component.repo, [TINY_WEIGHTS_MARKER])  # matches only test repos
        patterns += [p for p in component.download_patterns() if p not in patterns]
    return plan


def download_weights(
    weights_dir: str | Path,
    token: str | None,
    *,
    endpoint: str | None = None,
    max_workers: int = 8,
    presets: Sequence[str] = PRESET_NAMES,
) -> dict[str, int]:
    """Fetch the planned files of every repo ``presets`` need into ``WEIGHTS_DIR/<repo id>/``;
    returns the bytes of each repo's planned files on disk afterwards (logged too).

    ``snapshot_download`` with ``local_dir`` skips files that are already complete and resumes
    partial ones, so a restarted container does not download again. ``endpoint`` defaults to
    ``HF_ENDPOINT`` (huggingface_hub's own setting) or the public Hub. ``token`` None: anonymous
    (no token is sent, not even one saved on the machine): public repos only.
    """
    from huggingface_hub import snapshot_download

    root = Path(weights_dir)
    sizes: dict[str, int] = {}
    for repo, patterns in download_plan(presets).items():
        started = time.perf_counter()
        snapshot_download(
            repo_id=repo,
            local_dir=root / repo,
            allow_patterns=patterns,
            token=token or False,
            endpoint=endpoint,
            max_workers=max_workers,
        )
        sizes[repo] = sum(
            path.stat().st_size
            for pattern in patterns
            for path in (root / repo).glob(pattern)
            if path.is_file()
        )
        logger.info(
            "weights of %s ready in %.1f s (%.1f MB)", repo, time.perf_counter() - started, sizes[repo] / 1e6
        )
    return sizes


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
    ) -> None:
        self.weights_dir = weights_dir
        self.presets = tuple(presets)  # what to download for (``download_plan``)
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

    def require(self) -> Any:
        """The pipeline, or ``NotReadyError``/``WeightsMissingError`` saying why not."""
        with self._lock:
            state, pipeline, reason, detail = self.state, self.pipeline, self.reason, self.detail
        if state == "ready":
            return pipeline
        if state == "no_weights":
            raise WeightsMissingError(self.missing, str(self.weights_dir))
        if state == "failed":
            # The reason (library messages, download URLs) stays in the service log, unless it is
            # one of ours and safe to tell (no CUDA device, a failed GPU).
            raise NotReadyError(reason or "the models failed to load; the service log has the reason")
        raise NotReadyError(f"models are not ready yet: {detail}")

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            if self._token_arn:
                self.detail = "reading the Hugging Face token"
                token = read_hf_token(self._token_arn, self._secrets_client)
                self.detail = "downloading weights"
                download_weights(self.weights_dir, token, presets=self.presets)
                del token
            elif not needs_token(self.presets) and missing_files(self.weights_dir, self.presets):
                # Every repo of the served presets is public (no SVD): fetch what is missing without
                # a token (a complete WEIGHTS_DIR, e.g. the operator's own copy, is used as it is).
                self.detail = "downloading weights (public repos, no token)"
                logger.info(
                    "HF_TOKEN_ARN is not set; the presets %s need public repos only: "
                    "downloading what %s lacks without a token",
                    ",".join(self.presets),
                    self.weights_dir,
                )
                download_weights(self.weights_dir, None, presets=self.presets)
            else:
                logger.info("HF_TOKEN_ARN is not set: no download, using what is in %s", self.weights_dir)
            self.detail = "loading models"
            pipeline = self._load(self.weights_dir)
            _freeze_heap()
            with self._lock:
                self.pipeline = pipeline
                self.state, self.detail = "ready", f"loaded in {time.perf_counter() - started:.1f} s"
            logger.info("models ready in %.1f s", time.perf_counter() - started)
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
