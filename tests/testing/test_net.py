"""``testing.net``: free ports for the servers the tests start."""

from __future__ import annotations

import socket

from stereocrafter.testing.net import free_port


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
