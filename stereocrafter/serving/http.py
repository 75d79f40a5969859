"""The service's HTTP plumbing, under ``service.py`` (which keeps only the routes and the mapping of
errors to statuses): the routes served and the middleware that answers every other path in the
JSON error shape, the error response, the body reader with its limit, the queue of jobs for the
conversion slots (in arrival order, bounded by each job's deadline) and the SIGTERM handler that
stops the job in flight."""

from __future__ import annotations

import logging
import os
import signal
import threading
import uuid
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from stereocrafter.echo import bounded, echo
from stereocrafter.errors import (
    BadRequestError,
    BodyTooLargeError,
    MethodNotAllowedError,
    RouteNotFoundError,
    StereoCrafterError,
)
from stereocrafter.guard import POLL_S, STOPPING, Deadline
from stereocrafter.long.batch import BATCH_STRATEGY, MAX_PAYLOAD_MB

# The only routes served, with their methods.
ROUTES: dict[str, frozenset[str]] = {
    "/ping": frozenset({"GET"}),
    "/execution-parameters": frozenset({"GET"}),  # SageMaker Batch Transform asks it once per instance
    "/invocations": frozenset({"POST"}),
    "/metrics": frozenset({"GET"}),
}


def execution_parameters(slots: int) -> dict[str, Any]:
    """The answer to ``GET /execution-parameters`` for an instance with ``slots`` conversion slots
    (``long.batch``: one record per request, one request at a time per slot)."""
    return {
        "MaxConcurrentTransforms": slots,
        "BatchStrategy": BATCH_STRATEGY,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
    }


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def error_response(
    err: StereoCrafterError,
    request_id: str,
    headers: dict[str, str] | None = None,
    held: dict[str, float | None] | None = None,
) -> JSONResponse:
    """The JSON error answer; ``held``: the GPU time and cost a job spent before it failed (so that
    a caller's cost of a film counts its failed jobs too)."""
    body: dict[str, Any] = {"error": err.code, "message": bounded(err.message), "request_id": request_id}
    body.update(held or {})
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
        request_id = new_request_id()
        if methods is None:
            error: StereoCrafterError = RouteNotFoundError(
                f"no route {echo(path, 100)}; this service serves GET /ping, GET /execution-parameters and "
                "POST /invocations"
            )
            headers = {}
        else:
            allowed = ", ".join(sorted(methods))
            error = MethodNotAllowedError(f"{echo(method, 20)} is not allowed on {path}; use {allowed}")
            headers = {"Allow": allowed}
        await error_response(error, request_id, headers)(scope, receive, send)


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


class SlotQueue:
    """One job per conversion slot (GPU) at a time; anyio's limiter lets waiting requests in in
    arrival order."""

    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self.limiter = anyio.CapacityLimiter(self.slots)

    async def take(self, deadline: Deadline) -> None:
        """A slot, waited for in arrival order. The wait is bounded like the job: a watcher checks
        the deadline and SIGTERM every ``POLL_S`` and gives up the place in the queue, so a request
        queued behind a long job gets its 504 at its deadline (or its 503 at SIGTERM), not when the
        job ahead ends."""
        acquired = False
        async with anyio.create_task_group() as waiting:

            async def watch() -> None:
                while not STOPPING.is_set() and deadline.remaining > 0:
                    await anyio.sleep(POLL_S)
                waiting.cancel_scope.cancel()

            waiting.start_soon(watch)
            await self.limiter.acquire()
            acquired = True
            waiting.cancel_scope.cancel()
        if not acquired:
            deadline.check()  # raises: 503 shutting_down or 504 deadline_exceeded
            raise RuntimeError("the wait for a slot ended without a slot or a reason")

    def release(self) -> None:
        self.limiter.release()


def stop_jobs_on_sigterm(logger: logging.Logger) -> None:
    """SIGTERM first tells the job in flight to stop (``guard.STOPPING``: it ends at its next UNet
    evaluation with a 503 and writes nothing), then goes to the server's own handler (uvicorn's:
    stop accepting, wait for the requests in flight, exit). Without this the server would wait
    for the whole job, past the platform's grace period, and be killed with the caller unanswered.
    The service is built in the worker's main thread, inside uvicorn's signal capture, so the
    handler found here is uvicorn's."""
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
