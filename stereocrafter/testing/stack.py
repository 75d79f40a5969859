"""The one local stack: moto's server on 127.0.0.1 (``MotoServer``) and a real ``bentoml serve``
process of this service (``start_service``, ``stop``), together with tiny weights as ``local_stack``.
The demo, the benches, the image smoke and the tests start what they need from here."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from stereocrafter.client import HttpClient
from stereocrafter.testing.net import free_port

ROOT = Path(__file__).resolve().parents[2]  # the repository: service.py, bentofile.yaml


class Service:
    def __init__(self, url: str, log: Path, process: subprocess.Popen[bytes], pings: list[int]) -> None:
        self.url, self.log, self.process, self.pings = url, log, process, pings
        self.client = HttpClient(url, timeout=600)
        self.port = int(url.rsplit(":", 1)[1])

    def post(self, body: bytes | str, **headers: str) -> httpx.Response:
        return httpx.post(f"{self.url}/invocations", content=body, headers=headers, timeout=600)

    def healthy(self) -> bool:
        return httpx.get(f"{self.url}/ping", timeout=5).status_code == 200

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def raw_exchange(
        self, head: bytes, parts: list[bytes], *, pause: float = 0.0, timeout: float = 30.0
    ) -> tuple[int, bytes, int]:
        """Send ``head`` then each of ``parts`` (with ``pause`` seconds between them) on one raw
        socket, stopping as soon as the server answers. Returns the status, the response's body
        and how many body bytes were sent before the answer came."""
        import select

        sent = 0
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(head)
            response = b""
            deadline = time.monotonic() + timeout
            for part in parts:
                readable, _, _ = select.select([sock], [], [], pause)
                if readable:
                    break
                try:
                    sock.sendall(part)
                except OSError:  # the server answered and closed while we were still sending
                    break
                sent += len(part)
            while time.monotonic() < deadline:
                readable, _, _ = select.select([sock], [], [], 0.5)
                if not readable:
                    continue
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                response += chunk
                if b"\r\n\r\n" in response:
                    header, _, rest = response.partition(b"\r\n\r\n")
                    length = next(
                        (int(line.split(b":")[1]) for line in header.split(b"\r\n")
                         if line.lower().startswith(b"content-length:")),
                        None,
                    )  # fmt: skip
                    if length is not None and len(rest) >= length:
                        break
        assert response, "the server sent no answer"
        header, _, rest = response.partition(b"\r\n\r\n")
        return int(header.split(b" ")[1]), rest, sent


def start_service(tmp: Path, env_extra: dict[str, str], wait_ready: bool = True) -> Service:
    port = free_port()
    log = tmp / f"service-{port}.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "BENTOML_", "STEREOCRAFTER_", "WEIGHTS"))
    }
    env.update(
        {
            # One home per process: BentoML keeps its Prometheus multiprocess files there and
            # clears them when a server starts, which would blind another running server's metrics.
            "BENTOML_HOME": str(tmp / f"bentoml-{port}"),
            "BENTOML_DO_NOT_TRACK": "true",
            "STEREOCRAFTER_DEVICE": "cpu",
            "STEREOCRAFTER_DEPTH_STEPS": "2",
            "STEREOCRAFTER_INPAINT_STEPS": "2",
            "STEREOCRAFTER_DEPTH_INPUT_SIZE": "28",  # VDA's (turbo) input size: 518 upsamples tiny clips
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "PYTHONUNBUFFERED": "1",
            **env_extra,
        }
    )
    bentoml = str(Path(sys.executable).parent / "bentoml")
    command = [bentoml, "serve", "service:StereoCrafter", "--host", "127.0.0.1", "--port", str(port)]
    # A session of its own: its process group is not the test runner's, so it can be killed whole.
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    pings: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert process.poll() is None, f"bentoml serve exited:\n{log.read_text()[-3000:]}"
        try:
            pings.append(httpx.get(f"{url}/ping", timeout=2).status_code)
        except httpx.HTTPError:
            pings.append(0)
        if pings[-1] == 200 or (pings[-1] and not wait_ready):
            return Service(url, log, process, pings)
        time.sleep(0.2)
    kill_tree(process.pid)
    raise AssertionError(f"service never became healthy:\n{log.read_text()[-3000:]}")


def tree(pid: int) -> list[psutil.Process]:
    """The process and all its descendants (BentoML's worker runs in a process group of its own)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def alive(proc: psutil.Process) -> bool:
    """Running, not a zombie waiting for its parent."""
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def kill_tree(pid: int, processes: list[psutil.Process] | None = None) -> None:
    """SIGKILL every process group of the tree, then wait until every process of it is gone."""
    processes = processes if processes is not None else tree(pid)
    groups = set()
    for proc in processes:
        with contextlib.suppress(ProcessLookupError):
            groups.add(os.getpgid(proc.pid))
    for group in groups - {os.getpgrp()}:  # never the test runner's own group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    for proc in processes:  # one left in the runner's group (not started by start_service)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(processes, timeout=10)


def stop(service: Service, timeout: float = 30) -> None:
    """SIGTERM to the server (its arbiter stops its workers), then, after ``timeout`` s or for
    anything of the tree still running, SIGKILL by process group: no worker outlives a test."""
    processes = tree(service.process.pid)
    service.process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.process.wait(timeout=timeout)
    _, alive = psutil.wait_procs(processes, timeout=min(timeout, 10))
    if alive or service.process.poll() is None:
        kill_tree(service.process.pid, processes)
    service.process.wait(timeout=10)


CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class MotoServer:
    """moto's real HTTP server on 127.0.0.1 (S3, Secrets Manager, SageMaker, ...), with test
    credentials in the environment (set only where none are): ``with MotoServer() as moto:``
    ``moto.url``, ``moto.client("s3")``."""

    def __init__(self) -> None:
        self.url = ""
        self._server: object | None = None

    def __enter__(self) -> MotoServer:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request lines
        for name, value in CREDENTIALS.items():
            os.environ.setdefault(name, value)
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._server, self.url = server, f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *_: object) -> None:
        if self._server is not None:
            self._server.stop()  # type: ignore[attr-defined]

    def client(self, name: str, **kwargs: object) -> object:
        import boto3

        return boto3.client(name, endpoint_url=self.url, region_name="us-east-1", **kwargs)


class LocalStack:
    """The local stack: moto's S3 with a bucket, and the real service (``bentoml serve``) on tiny
    random weights reading from it; what the demo, the benches and the tests share."""

    def __init__(self, moto: MotoServer, service: Service, weights: Path, bucket: str) -> None:
        self.moto, self.service, self.weights, self.bucket = moto, service, weights, bucket
        self.s3: Any = moto.client("s3")

    def upload(self, path: Path, key: str) -> str:
        self.s3.upload_file(str(path), self.bucket, key)
        return f"s3://{self.bucket}/{key}"


@contextlib.contextmanager
def local_stack(
    work: Path, *, bucket: str = "videos", env: dict[str, str] | None = None
) -> Iterator[LocalStack]:
    """moto's S3 (``bucket`` created) and the service on the tiny weights under ``work`` (written
    once, reused), ready (``/ping`` 200); ``env`` adds or overrides the service's variables (the
    step counts: 2 per stage by default). Everything is stopped on the way out."""
    from stereocrafter.testing.weights import make_tiny_weights
    from stereocrafter.weights.manifest import TINY_WEIGHTS_MARKER

    work.mkdir(parents=True, exist_ok=True)
    weights = work / "tiny-weights"
    if not (weights / TINY_WEIGHTS_MARKER).is_file():
        make_tiny_weights(weights)
    with MotoServer() as moto:
        moto.client("s3").create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
        extra = {**CREDENTIALS, "AWS_ENDPOINT_URL": moto.url, "WEIGHTS_DIR": str(weights), **(env or {})}
        service = start_service(work, extra)
        try:
            yield LocalStack(moto, service, weights, bucket)
        finally:
            stop(service)
