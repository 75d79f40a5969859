"""Network helpers for tests that start servers on 127.0.0.1."""

from __future__ import annotations

import socket


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
