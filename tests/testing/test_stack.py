"""``testing.stack``: the one local stack's parts: moto's server on 127.0.0.1, and the process
tree of a server stopped whole."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil

from stereocrafter.testing.stack import MotoServer, kill_tree, tree


def test_moto_serves_s3_on_localhost(tmp_path: Path) -> None:
    with MotoServer() as moto:
        assert moto.url.startswith("http://127.0.0.1:")
        s3 = moto.client("s3")
        s3.create_bucket(Bucket="stack")  # type: ignore[attr-defined]
        s3.put_object(Bucket="stack", Key="k", Body=b"v")  # type: ignore[attr-defined]
        assert s3.get_object(Bucket="stack", Key="k")["Body"].read() == b"v"  # type: ignore[attr-defined]


def test_a_process_tree_is_killed_whole() -> None:
    child = "import time; time.sleep(60)"
    script = (
        f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]); time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    for _ in range(50):
        if len(tree(parent.pid)) == 2:
            break
        time.sleep(0.1)
    processes = tree(parent.pid)
    assert len(processes) == 2
    kill_tree(parent.pid)
    parent.wait(timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)
