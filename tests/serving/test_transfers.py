"""``serving.transfers``: transfers under the job's stop check (a hung download stopped within a
poll, an upload stopped mid-way aborted), slow but progressing ones finish, a broken one fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from stereocrafter.errors import (
    S3UnavailableError,
)
from stereocrafter.serving.storage import S3Storage
from stereocrafter.testing.net import TricklingS3
from tests.support.s3 import offline_client
from tests.support.stops import Calls


class Stop(Exception):
    """What a job's check raises (a deadline, SIGTERM)."""


def stop_after(seconds: float):
    """A ``check`` that passes for ``seconds``, then raises ``Stop``."""
    import time

    until = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > until:
            raise Stop

    return check


def test_a_slow_but_progressing_download_succeeds(tmp_path: Path) -> None:
    """A body trickling in 200-byte pieces every 0.2 s takes about 2 s in all, four times the
    0.5 s read time-out: no read waits that long, so the download completes."""
    body = bytes(range(256)) * 8
    settings = {"max_attempts": 1, "connect_timeout": 1.0, "read_timeout": 0.5}
    with TricklingS3(body, piece=200, interval=0.2) as server:
        storage = S3Storage(offline_client(server.url, **settings), **settings)
        assert storage.download("s3://videos/slow.mp4", tmp_path / "slow") == len(body)
    assert (tmp_path / "slow").read_bytes() == body
    assert "GET /videos/slow.mp4" in server.requests


def test_a_download_that_stops_mid_way_fails_after_two_gets(tmp_path: Path) -> None:
    body = b"v" * 4000
    settings = {"max_attempts": 1, "connect_timeout": 1.0, "read_timeout": 0.5}
    with TricklingS3(body, piece=500, interval=0.01, stall_after=1000) as server:
        storage = S3Storage(offline_client(server.url, **settings), **settings)
        with pytest.raises(S3UnavailableError) as caught:
            storage.download("s3://videos/broken.mp4", tmp_path / "broken")
    assert caught.value.status == 502
    assert server.requests.count("GET /videos/broken.mp4") == 2
    assert not (tmp_path / "broken").exists()


# --- stopped by the job's deadline or SIGTERM (``check``) in the middle of a transfer -----------


def test_a_hung_download_is_stopped_by_the_check_within_a_poll(moto_server: str, s3, tmp_path: Path) -> None:
    """The GET's socket read hangs (the read time-out is 15 s, the default): the job's check stops
    it 0.25 s after the deadline, not after the time-out, and nothing is left at the path."""
    import time

    from stereocrafter.testing.net import S3Proxy

    s3.put_object(Bucket="videos", Key="in/a.mp4", Body=b"z" * 40_000)
    with S3Proxy(moto_server, lambda method, path: "hang" if method == "GET" else None) as proxy:
        storage = S3Storage(offline_client(proxy.url))
        started = time.monotonic()
        with pytest.raises(Stop):
            storage.download("s3://videos/in/a.mp4", tmp_path / "a", stop=Calls(stop_after(1.0)))
        elapsed = time.monotonic() - started
        assert proxy.held == 1  # the GET was sent and is hanging
    assert 1.0 <= elapsed < 3.0, elapsed  # a poll after the deadline, not the 15 s read time-out
    assert list(tmp_path.iterdir()) == []


def test_an_upload_stopped_mid_way_is_aborted_and_writes_nothing(
    moto_server: str, s3, tmp_path: Path
) -> None:
    """Every part takes 3 s (a slow link); the check stops the upload after 0.3 s, with parts
    still in flight: no object appears, the multipart upload is aborted once they end. (The
    margins allow for a collector pause of this test process's large heap.)"""
    import time

    from stereocrafter.testing.net import S3Proxy

    def slow_parts(method: str, path: str) -> float | None:
        return 3.0 if method == "PUT" and "partNumber=" in path else None

    big = tmp_path / "big"
    big.write_bytes(b"y" * (26 * 2**20))  # 6 parts of 5 MiB, 8 at a time
    with S3Proxy(moto_server, slow_parts) as proxy:
        storage = S3Storage(offline_client(proxy.url), chunk_mib=5)
        started = time.monotonic()
        with pytest.raises(Stop):
            storage.upload(big, "s3://videos/out/stopped.mp4", stop=Calls(stop_after(0.3)))
        assert time.monotonic() - started < 2.5  # not after the parts (3 s)
        deadline = time.monotonic() + 10  # the parts in flight end, then the abort is sent
        while s3.list_multipart_uploads(Bucket="videos").get("Uploads") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any("CompleteMultipartUpload" in p or ("uploadId=" in p and m == "POST")
                       for m, p in proxy.requests)  # fmt: skip
    assert not s3.list_multipart_uploads(Bucket="videos").get("Uploads")
    assert "Contents" not in s3.list_objects_v2(Bucket="videos", Prefix="out/")


def test_the_transfer_threads_are_daemons() -> None:
    """A thread blocked in an abandoned transfer's socket read must not hold a stopping service."""
    import threading

    from stereocrafter.serving.transfers import DaemonThreads

    pool = DaemonThreads(max_workers=2)
    seen: list[bool] = []
    assert pool.submit(lambda: seen.append(threading.current_thread().daemon) or 3).result(timeout=5) == 3
    assert seen == [True]
