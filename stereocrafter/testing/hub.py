"""A minimal Hugging Face Hub-compatible HTTP server over a local folder, for download tests.

Serves ``root/<org>/<name>/...`` as model repos through the endpoints ``huggingface_hub`` uses
(repo info, recursive tree listing, ``resolve`` with HEAD, GET and Range) and refuses any request
whose bearer token is not ``token``, except requests without any token for the repos in
``public`` (as the Hub serves public repos anonymously). Each repo is at one commit (``commit``:
``testing.weights.tiny_commit``); a request for any other revision than it or ``main`` is answered
404 ``RevisionNotFound``, as the Hub answers an unknown commit. It records the paths asked for, the
revisions, and every Authorization header it saw. Run it with ``HF_ENDPOINT=http://127.0.0.1:<port>``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse


class HubServer:
    def __init__(self, root: Path, token: str, public: tuple[str, ...] = ()) -> None:
        self.root, self.token, self.public = root, token, public
        self.delay = 0.0  # seconds to wait before each file download (to make start-up observable)
        self.requests: list[str] = []
        self.auth_headers: list[str] = []
        self.downloads: list[str] = []
        self.revisions: list[tuple[str, str]] = []  # (repo, revision) of every request naming one
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                server.handle(self, head=True)

            def do_GET(self) -> None:
                server.handle(self, head=False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @staticmethod
    def commit(repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def files(self, repo: str) -> list[Path]:
        base = self.root / repo
        return sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []

    def handle(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlparse(req.path).path)
        self.requests.append(f"{req.command} {path}")
        auth = req.headers.get("Authorization", "")
        self.auth_headers.append(auth)
        parts = path.strip("/").split("/")
        repo = "/".join(parts[2:4] if parts[:2] == ["api", "models"] else parts[:2])
        if auth != f"Bearer {self.token}" and not (auth == "" and repo in self.public):
            return self.send(req, 401, {"error": "Invalid credentials"}, head)
        revision = (
            parts[5]
            if parts[:2] == ["api", "models"] and len(parts) >= 6
            else (parts[3] if len(parts) >= 5 and parts[2] == "resolve" else None)
        )
        if revision is not None:
            self.revisions.append((repo, revision))
            if revision not in ("main", self.commit(repo)):
                unknown = {"X-Error-Code": "RevisionNotFound"}
                return self.send(req, 404, {"error": f"Invalid rev id: {revision}"}, head, unknown)
        if parts[:2] == ["api", "models"] and len(parts) >= 6:
            repo = "/".join(parts[2:4])
            files = self.files(repo)
            if not files:
                missing = {"X-Error-Code": "RepoNotFound"}
                return self.send(req, 404, {"error": "Repository not found"}, head, missing)
            rel = [f.relative_to(self.root / repo).as_posix() for f in files]
            if parts[4] == "revision":
                body = {"id": repo, "modelId": repo, "sha": self.commit(repo), "private": False,
                        "siblings": [{"rfilename": r} for r in rel]}  # fmt: skip
                return self.send(req, 200, body, head)
            if parts[4] == "tree":
                entries = [
                    {
                        "type": "file",
                        "oid": hashlib.sha1(f.read_bytes()).hexdigest(),
                        "size": f.stat().st_size,
                        "path": r,
                    }
                    for f, r in zip(files, rel, strict=True)
                ]
                return self.send(req, 200, entries, head)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo, name = "/".join(parts[:2]), "/".join(parts[4:])
            file = self.root / repo / name
            if not file.is_file():
                missing = {"X-Error-Code": "EntryNotFound"}
                return self.send(req, 404, {"error": "Entry not found"}, head, missing)
            data = file.read_bytes()
            headers = {"X-Repo-Commit": self.commit(repo), "ETag": f'"{hashlib.sha1(data).hexdigest()}"'}
            status, start = 200, 0
            ranged = req.headers.get("Range", "")
            if ranged.startswith("bytes="):
                start = int(ranged[6:].split("-")[0] or 0)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            if not head:
                time.sleep(self.delay)
                self.downloads.append(f"{repo}/{name}")
            return self.send_bytes(req, status, data[start:], head, headers)
        return self.send(req, 404, {"error": f"unknown path {path}"}, head)

    def send(self, req: BaseHTTPRequestHandler, status: int, body: object, head: bool,
             headers: dict[str, str] | None = None) -> None:  # fmt: skip
        headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_bytes(req, status, json.dumps(body).encode(), head, headers)

    @staticmethod
    def send_bytes(
        req: BaseHTTPRequestHandler, status: int, data: bytes, head: bool, headers: dict[str, str]
    ) -> None:
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if not head:
            req.wfile.write(data)
