"""BentoML service: the SageMaker container contract around the StereoCrafter conversion.

- ``GET /ping``: 200 once the service can work (or runs without any weights configured), 503 while
  weights download/load or after a failed load. It never waits for a job.
- ``POST /invocations``: the raw JSON body ``{"s3_input_uri", "s3_output_uri", "mode", ...}``
  (or ``{"task": "depth", "s3_input_uri", "depth_output_uri"}``: stage 1 alone, for long videos)
  (at most ``STEREOCRAFTER_MAX_BODY_BYTES``, 64 KiB by default: a larger one is refused with 413
  before it is read); one conversion on the GPU at a time, later requests wait in arrival order.
- ``GET /metrics``: BentoML's Prometheus metrics, for operators (SageMaker proxies only the two
  routes above to the container).

Nothing else is served: every other path answers 404 and a wrong method 405, and every error of
every route is ``{"error": code, "message": ..., "request_id": ...}`` with the status of the error
type. This module only adapts HTTP to ``stereocrafter``; heavy imports happen in the constructor.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from stereocrafter.echo import bounded, echo, get_logger
from stereocrafter.errors import (
    BadRequestError,
    BodyTooLargeError,
    MethodNotAllowedError,
    RouteNotFoundError,
    StereoCrafterError,
)
from stereocrafter.guard import POLL_S, STOPPING, Deadline
from stereocrafter.jobs.context import Encoding, Job
from stereocrafter.serving import metrics
from stereocrafter.serving.schemas import InvocationRequest, parse_invocation

logger = get_logger("bentoml.stereocrafter.service")

http = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

# Above the longest job plus its wait in the queue, and above SageMaker's own limit (3600 s for
# asynchronous inference): SageMaker, not BentoML, should be what cuts a request off, and a BentoML
# timeout does not stop the job's thread anyway.
REQUEST_TIMEOUT_S = 7200

# The only routes served, with their methods.
ROUTES: dict[str, frozenset[str]] = {
    "/ping": frozenset({"GET"}),
    "/invocations": frozenset({"POST"}),
    "/metrics": frozenset({"GET"}),
}


def _new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def _error(err: StereoCrafterError, request_id: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": err.code, "message": bounded(err.message), "request_id": request_id}
    return JSONResponse(body, status_code=err.status, headers={"X-Request-Id": request_id, **(headers or {})})


class OnlyOurRoutes:
    """ASGI middleware in front of BentoML's router: requests for any path outside ``ROUTES``
    (BentoML's /docs.json, /schema.json, /readyz, /healthz, /livez, its index page and static
    files, ...) get 404, a known path with the wrong method 405, both in the JSON error shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "")
        methods = ROUTES.get(path)
        if methods is not None and method in methods:
            await self.app(scope, receive, send)
            return
        request_id = _new_request_id()
        if methods is None:
            error: StereoCrafterError = RouteNotFoundError(
                f"no route {echo(path, 100)}; this service serves GET /ping and POST /invocations"
            )
            headers = {}
        else:
            allowed = ", ".join(sorted(methods))
            error = MethodNotAllowedError(f"{echo(method, 20)} is not allowed on {path}; use {allowed}")
            headers = {"Allow": allowed}
        await _error(error, request_id, headers)(scope, receive, send)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with ``BodyTooLargeError`` as soon as it is known to be over
    ``limit`` bytes: at once from a ``Content-Length`` header, else while the chunks arrive (a
    chunked body is never buffered past the limit)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequestError(f"the Content-Length header is not a number: {echo(declared, 40)}")
        if int(declared) > limit:
            raise BodyTooLargeError(f"the body is {int(declared)} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise BodyTooLargeError(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@bentoml.service(
    name="stereocrafter",
    resources={"gpu": 1},
    traffic={"timeout": REQUEST_TIMEOUT_S},
    endpoints={"livez": "/ping"},  # /ping skips the concurrency limiter and the access log
)
@bentoml.asgi_app(http, path="/")
class StereoCrafter:
    def __init__(self) -> None:
        from stereocrafter.models.thirdparty import quiet_known_messages

        quiet_known_messages()  # before transformers and diffusers are imported
        from stereocrafter.doctor import diagnose
        from stereocrafter.serving.gpu import default_device
        from stereocrafter.serving.jobs import run_job
        from stereocrafter.serving.pool import PoolLoader
        from stereocrafter.serving.storage import S3Storage
        from stereocrafter.serving.weights import ModelHolder
        from stereocrafter.settings import load_settings

        self.settings = settings = load_settings(default_device=default_device)
        for line in diagnose(settings):  # what this instance can do, in CloudWatch
            logger.info("doctor: %s", line)
        loader = PoolLoader(settings)  # one conversion slot per GPU, decided before any CUDA context
        self.models = ModelHolder(
            settings.weights_dir, settings.hf_token_arn, loader.load, presets=settings.presets
        ).start()
        self.storage = S3Storage(
            max_attempts=settings.s3_max_attempts,
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
        )
        # Imported here, not at the first job: an import at a job's start holds the GIL and
        # stalls the event loop that answers /ping.
        self._run_job = run_job
        # One job per slot (GPU) at a time; anyio's limiter lets waiting requests in arrival order.
        self.gpu = anyio.CapacityLimiter(max(1, len(loader.devices)))
        _stop_jobs_on_sigterm()

    def __is_ready__(self) -> bool:
        return bool(self.models.healthy)

    @http.get("/ping")
    def ping(self) -> JSONResponse:
        status = 200 if self.models.healthy else 503
        metrics.set_model_state(self.models.state)
        body = {"status": self.models.state}
        if self.models.state == "failed":
            body["reason"] = self.models.reason or "the models failed to load; the service log has the reason"
        return JSONResponse(body, status_code=status)

    @http.post("/invocations")
    async def invocations(self, request: Request) -> JSONResponse:
        request_id = _new_request_id()
        arrived = time.monotonic()
        try:
            job = parse_invocation(await read_body(request, self.settings.max_body_bytes), self.settings)
            self.models.require()  # 503 at once, without queueing, when models are not there
            deadline = Deadline.for_job(self.settings, job, arrived)
            await self._take_slot(deadline)  # in arrival order; 504 / 503 while waiting too
            try:
                response = await anyio.to_thread.run_sync(self._run, job, request_id, deadline)
            finally:
                self.gpu.release()
        except BodyTooLargeError as err:
            logger.info("request %s refused: %s %s", request_id, err.status, err.code)
            metrics.JOBS.labels("error", err.code).inc()
            # The rest of the body is never read: close the connection rather than drain it.
            return _error(err, request_id, {"Connection": "close"})
        except StereoCrafterError as err:
            logger.info("request %s failed: %s %s", request_id, err.status, err.code)
            metrics.JOBS.labels("error", err.code).inc()
            return _error(err, request_id)
        except Exception:
            logger.exception("request %s failed unexpectedly", request_id)
            internal = StereoCrafterError("internal error; the request id identifies it in the service log")
            metrics.JOBS.labels("error", internal.code).inc()
            return _error(internal, request_id)
        metrics.JOBS.labels("ok", "").inc()
        return JSONResponse(response, headers={"X-Request-Id": request_id})

    async def _take_slot(self, deadline: Deadline) -> None:
        """A conversion slot from the limiter, waited for in arrival order. The wait is bounded
        like the job: a watcher checks the deadline and SIGTERM every ``POLL_S`` and gives up the
        place in the queue, so a request queued behind a long job gets its 504 at its deadline
        (or its 503 at SIGTERM), not when the job ahead ends."""
        acquired = False
        async with anyio.create_task_group() as waiting:

            async def watch() -> None:
                while not STOPPING.is_set() and deadline.remaining > 0:
                    await anyio.sleep(POLL_S)
                waiting.cancel_scope.cancel()

            waiting.start_soon(watch)
            await self.gpu.acquire()
            acquired = True
            waiting.cancel_scope.cancel()
        if not acquired:
            deadline.check()  # raises: 503 shutting_down or 504 deadline_exceeded
            raise RuntimeError("the wait for a slot ended without a slot or a reason")

    def _gpu_failed(self, reason: str) -> None:
        """A CUDA error poisoned this instance's GPU: /ping answers 503 from now on."""
        self.models.mark_failed(reason)
        metrics.set_model_state(self.models.state)

    def _run(self, job: InvocationRequest, request_id: str, deadline: Deadline) -> dict[str, Any]:
        """In a worker thread: the job on a free slot (``PipelinePool.job``: the GPU set up, its
        errors classified, its memory released), then the metrics and the log line."""
        metrics.QUEUE_WAIT.observe(time.monotonic() - deadline.since)
        pool = self.models.require()
        with pool.job(request_id, on_fatal=self._gpu_failed) as slot:
            logger.info(
                "request %s: %s -> %s (%s) on slot %d (%s)",
                request_id,
                echo(job.s3_input_uri.uri),
                echo(job.output.uri),
                job.mode if job.task == "stereo" else "depth task",
                slot.index,
                slot.device,
            )
            context = Job(
                config=job.config,
                request_id=request_id,
                settings=self.settings,
                storage=self.storage,
                stop=deadline,
                encoding=Encoding(pool.encoder_for(slot)),
                tiny=slot.pipeline.tiny,
            )
            result = self._run_job(slot.pipeline, context, job)
        metrics.job_finished(result.frames, result.timings)
        metrics.set_model_state(self.models.state)
        result = result.model_copy(update={"slot": slot.index, "device": slot.device})
        encoder = getattr(result, "encoder", None)  # a depth task writes no video
        logger.info(
            "request %s done (%s preset): %d frames in %.1f s; %s%s",
            request_id,
            result.preset,
            result.frames,
            result.finished_at - result.started_at,
            ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items()),
            f"; encoder {encoder['codec']}" if encoder else "",
        )
        return result.model_dump()


StereoCrafter.add_asgi_middleware(OnlyOurRoutes)  # type: ignore[attr-defined]  # added by @bentoml.service


def _stop_jobs_on_sigterm() -> None:
    """SIGTERM first tells the job in flight to stop (``guard.STOPPING``: it ends at its next UNet
    evaluation with a 503 and writes nothing), then goes to the server's own handler (uvicorn's:
    stop accepting, wait for the requests in flight, exit). Without this the server would wait
    for the whole job, past the platform's grace period, and be killed with the caller unanswered.
    The service is built in the worker's main thread, inside uvicorn's signal capture, so the
    handler found here is uvicorn's."""
    import os
    import signal
    import threading

    from stereocrafter.guard import STOPPING

    if threading.current_thread() is not threading.main_thread():
        logger.warning("not in the main thread: SIGTERM will wait for the job in flight")
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        if not STOPPING.is_set():
            logger.warning("SIGTERM: stopping the job in flight and refusing queued ones (503 shutting_down)")
        STOPPING.set()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
