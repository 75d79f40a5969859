"""BentoML service: the SageMaker container contract around the StereoCrafter conversion.

- ``GET /ping``: 200 once the service can work (or runs without any weights configured), 503 while
  weights download/load or after a failed load. It never waits for a job.
- ``POST /invocations``: the raw JSON body ``{"s3_input_uri", "s3_output_uri", "mode", ...}``
  (or ``{"task": "depth", "s3_input_uri", "depth_output_uri"}``: stage 1 alone, for long videos)
  (at most ``STEREOCRAFTER_MAX_BODY_BYTES``, 64 KiB by default: a larger one is refused with 413
  before it is read); one conversion on the GPU at a time, later requests wait in arrival order.
- ``GET /execution-parameters``: what SageMaker Batch Transform asks before the first record (one
  record per request, one request at a time per conversion slot).
- ``GET /metrics``: BentoML's Prometheus metrics, for operators (SageMaker proxies only the
  routes above to the container).

Nothing else is served: every other path answers 404 and a wrong method 405, and every error of
every route is ``{"error": code, "message": ..., "request_id": ...}`` with the status of the error
type. This module only adapts HTTP to ``stereocrafter``; heavy imports happen in the constructor.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from stereocrafter.echo import echo, get_logger
from stereocrafter.errors import (
    BodyTooLargeError,
    StereoCrafterError,
)
from stereocrafter.guard import Deadline
from stereocrafter.jobs.context import Encoding, Job
from stereocrafter.serving import metrics
from stereocrafter.serving.http import (
    OnlyOurRoutes,
    SlotQueue,
    error_response,
    execution_parameters,
    new_request_id,
    read_body,
    stop_jobs_on_sigterm,
)
from stereocrafter.serving.schemas import InvocationRequest, parse_invocation

logger = get_logger("bentoml.stereocrafter.service")

http = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

# Above the longest job plus its wait in the queue, and above SageMaker's own limit (3600 s for
# asynchronous inference): SageMaker, not BentoML, should be what cuts a request off, and a BentoML
# timeout does not stop the job's thread anyway.
REQUEST_TIMEOUT_S = 7200


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
            settings.weights_dir,
            settings.hf_token_arn,
            loader.load,
            presets=settings.presets,
            default_preset=settings.preset,
            offline=settings.hub_offline,
            manifest=loader.manifest,
        ).start()
        self.storage = S3Storage(
            max_attempts=settings.s3_max_attempts,
            connect_timeout=settings.s3_connect_timeout,
            read_timeout=settings.s3_read_timeout,
        )
        # Imported here, not at the first job: an import at a job's start holds the GIL and
        # stalls the event loop that answers /ping.
        self._run_job = run_job
        # One job per slot (GPU) at a time, waiting requests in arrival order (serving.http).
        self.gpu = SlotQueue(len(loader.devices))
        # one slot's share of the instance's hourly price (a job's cost: its slot-hours x this); with
        # no usable device there are no slots and no jobs: the start goes on to say why on /ping
        price = settings.instance_hour_price
        self._slot_price = None if price is None else price / self.gpu.slots
        stop_jobs_on_sigterm(logger)

    def __is_ready__(self) -> bool:
        return bool(self.models.healthy)

    @http.get("/ping")
    def ping(self) -> JSONResponse:
        status = 200 if self.models.healthy else 503
        presets = self.models.preset_states()
        metrics.set_model_state(self.models.state, presets)
        body: dict[str, Any] = {"status": self.models.state, "default_preset": self.models.default_preset}
        if self.models.state == "failed":
            body["reason"] = self.models.reason or "the models failed to load; the service log has the reason"
        body["presets"] = presets
        return JSONResponse(body, status_code=status)

    @http.get("/execution-parameters")
    def execution_parameters(self) -> JSONResponse:
        """SageMaker Batch Transform's question before the first record: one record per request,
        one request at a time per conversion slot (GPU)."""
        return JSONResponse(execution_parameters(self.gpu.slots))

    @http.post("/invocations")
    async def invocations(self, request: Request) -> JSONResponse:
        request_id = new_request_id()
        arrived = time.monotonic()
        taken: float | None = None  # when the job took its slot (GPU)
        try:
            job = parse_invocation(await read_body(request, self.settings.max_body_bytes), self.settings)
            self.models.require(job.config.preset)  # 503 at once, without queueing, when it cannot run
            deadline = Deadline.for_job(self.settings, job, arrived)
            await self.gpu.take(deadline)  # in arrival order; 504 / 503 while waiting too
            taken = time.monotonic()
            try:
                response = await anyio.to_thread.run_sync(self._run, job, request_id, deadline)
            finally:
                self.gpu.release()
        except BodyTooLargeError as err:
            logger.info("request %s refused: %s %s", request_id, err.status, err.code)
            metrics.JOBS.labels("error", err.code).inc()
            # The rest of the body is never read: close the connection rather than drain it.
            return error_response(err, request_id, {"Connection": "close"})
        except StereoCrafterError as err:
            logger.info("request %s failed: %s %s", request_id, err.status, err.code)
            metrics.JOBS.labels("error", err.code).inc()
            return error_response(err, request_id, held=self._held(taken))
        except Exception:
            logger.exception("request %s failed unexpectedly", request_id)
            internal = StereoCrafterError("internal error; the request id identifies it in the service log")
            metrics.JOBS.labels("error", internal.code).inc()
            return error_response(internal, request_id, held=self._held(taken))
        metrics.JOBS.labels("ok", "").inc()
        return JSONResponse(response, headers={"X-Request-Id": request_id})

    def _held(self, taken: float | None) -> dict[str, float | None] | None:
        """A failed job's slot time and cost, for its error answer (None: it never took a slot)."""
        if taken is None:
            return None
        seconds = round(time.monotonic() - taken, 3)
        cost = None if self._slot_price is None else round(seconds / 3600 * self._slot_price, 6)
        return {"gpu_seconds": seconds, "cost": cost}

    def _gpu_failed(self, reason: str) -> None:
        """A CUDA error poisoned this instance's GPU: /ping answers 503 from now on."""
        self.models.mark_failed(reason)
        metrics.set_model_state(self.models.state)

    def _run(self, job: InvocationRequest, request_id: str, deadline: Deadline) -> dict[str, Any]:
        """In a worker thread: the job on a free slot (``PipelinePool.job``: the GPU set up, its
        errors classified, its memory released), then the metrics and the log line."""
        metrics.QUEUE_WAIT.observe(time.monotonic() - deadline.since)
        pool = self.models.require(job.config.preset)
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
                made_by=slot.pipeline.provenance,
                slot_hour_price=self._slot_price,
            )
            result = self._run_job(slot.pipeline, context, job)
        frames = 0 if result.reused else result.frames  # a recorded answer given again converted nothing
        metrics.job_finished(frames, result.timings, job.config.preset, result.gpu_seconds, result.cost)
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
