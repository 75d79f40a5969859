"""Network helpers for tests that start servers on 127.0.0.1."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StallingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers (an S3 that hangs)."""

    def __init__(self) -> None:
        import threading

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = int(self._sock.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self._held.append(conn)  # read nothing, answer nothing, keep it open

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self._held:
            conn.close()
        self._sock.close()


class TricklingS3:
    """A minimal S3 GET/HEAD endpoint on 127.0.0.1 that serves one body slowly: ``piece`` bytes
    every ``interval`` seconds (a slow link that still makes progress); with ``stall_after``, every
    GET stops sending after that many bytes and hangs (a transfer that dies mid-way)."""

    def __init__(self, body: bytes, piece: int, interval: float, stall_after: int | None = None) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.body, self.piece, self.interval = body, piece, interval
        self.requests: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _headers(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.send_header("Content-Type", "video/mp4")
                self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
                self.send_header("Last-Modified", "Sat, 28 Nov 2026 00:00:00 GMT")
                self.end_headers()

            def do_HEAD(self) -> None:
                outer.requests.append(f"HEAD {self.path}")
                self._headers()

            def do_GET(self) -> None:
                import time

                outer.requests.append(f"GET {self.path}")
                self._headers()
                for start in range(0, len(outer.body), outer.piece):
                    if stall_after is not None and start >= stall_after:
                        time.sleep(120)
                        return
                    self.wfile.write(outer.body[start : start + outer.piece])
                    self.wfile.flush()
                    time.sleep(outer.interval)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> TricklingS3:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class S3Proxy:
    """A forwarding proxy on 127.0.0.1 in front of a real S3 endpoint (moto's server) that can
    make chosen requests slow or hang: ``rule(method, path)`` returns None (forward at once), a
    number of seconds to wait before forwarding, or ``"hang"`` (accept the request and never
    answer, as an S3 whose socket read stalls). ``requests`` lists every (method, path) seen;
    ``held`` counts the requests hanging now."""

    def __init__(self, upstream: str, rule: Any = None) -> None:
        import http.client
        import threading
        import time
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        outer = self
        self.rule = rule or (lambda method, path: None)
        self.requests: list[tuple[str, str]] = []
        self.held = 0
        self._release = threading.Event()
        target = urlsplit(upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    parts = []
                    while (size := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                return self.rfile.read(int(self.headers.get("Content-Length", 0)))

            def _forward(self) -> None:
                body = self._body()
                outer.requests.append((self.command, self.path))
                action = outer.rule(self.command, self.path)
                if action == "hang":
                    outer.held += 1
                    outer._release.wait(300)
                    self.close_connection = True
                    return
                if action:
                    time.sleep(float(action))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("transfer-encoding", "host")
                }
                headers["Content-Length"] = str(len(body))
                connection = http.client.HTTPConnection(
                    target.hostname or "127.0.0.1", target.port, timeout=60
                )
                connection.request(self.command, self.path, body=body, headers=headers)
                answer = connection.getresponse()
                payload = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                connection.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> S3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
