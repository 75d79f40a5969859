"""BentoML service: the SageMaker container contract around the StereoCrafter conversion.

- ``GET /ping``: 200 once the service can work (or runs without any weights configured), 503 while
  weights download/load or after a failed load. It never waits for a job.
- ``POST /invocations``: the raw JSON body ``{"s3_input_uri", "s3_output_uri", "mode", ...}``;
  one conversion on the GPU at a time, later requests wait in arrival order. Errors answer
  ``{"error": code, "message": ..., "request_id": ...}`` with the status of the error type.

This module only adapts HTTP to ``stereocrafter``; heavy imports happen in the constructor.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse

from stereocrafter.errors import BadRequestError, StereoCrafterError
from stereocrafter.schemas import InvocationRequest

logger = logging.getLogger("bentoml.stereocrafter.service")

http = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

# Above the longest job plus its wait in the queue, and above SageMaker's own limit (3600 s for
# asynchronous inference): SageMaker, not BentoML, should be what cuts a request off, and a BentoML
# timeout does not stop the job's thread anyway.
REQUEST_TIMEOUT_S = 7200


def _error(err: StereoCrafterError, request_id: str) -> JSONResponse:
    body = {"error": err.code, "message": err.message, "request_id": request_id}
    return JSONResponse(body, status_code=err.status, headers={"X-Request-Id": request_id})


def _validation_message(err: ValidationError) -> str:
    """pydantic errors as one line, without echoing the submitted values."""
    parts = []
    for item in err.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in item["loc"]) or "body"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


@bentoml.service(
    name="stereocrafter",
    resources={"gpu": 1},
    traffic={"timeout": REQUEST_TIMEOUT_S},
    endpoints={"livez": "/ping"},  # /ping skips the concurrency limiter and the access log
)
@bentoml.asgi_app(http, path="/")
class StereoCrafter:
    def __init__(self) -> None:
        from stereocrafter.loading import load_stereo_pipeline
        from stereocrafter.settings import load_settings
        from stereocrafter.storage import S3Storage
        from stereocrafter.weights import ModelHolder

        self.settings = load_settings()
        device = self.settings.device
        self.models = ModelHolder(
            self.settings.weights_dir,
            self.settings.hf_token_arn,
            lambda weights_dir: load_stereo_pipeline(weights_dir, device=device),
        ).start()
        self.storage = S3Storage()
        # One job on the GPU at a time; anyio's limiter lets waiting requests in arrival order.
        self.gpu = anyio.CapacityLimiter(1)

    def __is_ready__(self) -> bool:
        return bool(self.models.healthy)

    @http.get("/ping")
    def ping(self) -> JSONResponse:
        status = 200 if self.models.healthy else 503
        return JSONResponse({"status": self.models.state}, status_code=status)

    @http.post("/invocations")
    async def invocations(self, request: Request) -> JSONResponse:
        request_id = uuid.uuid4().hex[:16]
        try:
            job = self._parse(await request.body())
            self.models.require()  # 503 at once, without queueing, when models are not there
            response = await anyio.to_thread.run_sync(self._run, job, request_id, limiter=self.gpu)
        except StereoCrafterError as err:
            logger.info("request %s failed: %s %s", request_id, err.status, err.code)
            return _error(err, request_id)
        except Exception:
            logger.exception("request %s failed unexpectedly", request_id)
            err = StereoCrafterError("internal error; the request id identifies it in the service log")
            return _error(err, request_id)
        return JSONResponse(response, headers={"X-Request-Id": request_id})

    @staticmethod
    def _parse(body: bytes) -> InvocationRequest:
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BadRequestError(
                f"the body is not valid JSON ({err.msg if hasattr(err, 'msg') else err})"
            ) from None
        if not isinstance(data, dict):
            raise BadRequestError("the body must be a JSON object with s3_input_uri and s3_output_uri")
        try:
            return InvocationRequest.model_validate(data)
        except ValidationError as err:
            raise BadRequestError(_validation_message(err)) from None

    def _run(self, job: InvocationRequest, request_id: str) -> dict[str, Any]:
        from stereocrafter.convert import run_job
        from stereocrafter.loading import is_tiny

        pipeline = self.models.require()
        logger.info("request %s: %s -> %s (%s)", request_id, job.s3_input_uri, job.s3_output_uri, job.mode)
        try:
            result = run_job(pipeline, self.storage, job, self.settings, request_id)
        finally:
            _release_gpu_memory()
        result = result.model_copy(update={"tiny_weights": is_tiny(self.settings.weights_dir)})
        logger.info(
            "request %s done: %d frames in %.1f s",
            request_id,
            result.frames,
            result.finished_at - result.started_at,
        )
        return result.model_dump()


def _release_gpu_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
