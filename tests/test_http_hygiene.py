"""HTTP hygiene (issue 11, item 10): idle and half-sent connections are closed, connections
past the limit are answered 503, and netmon answers again once they are gone.

The drill, on a real ``netmon run``: 400 connections that never send a request or stop halfway
through their headers were all still open 30 s later. Here they are closed by the server
(``HEADER_TIMEOUT``), and a client that sends its request slowly but within it is answered.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

import httpx

from netmon.api.connections import HEADER_TIMEOUT, LIMIT_CONCURRENCY
from tests.netmon_process import running_netmon, stop

HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: slow"  # no blank line


def _connect(port: int, send: bytes = b"") -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    if send:
        s.sendall(send)
    return s


def _closed_by_server(socks: list[socket.socket], bound: float) -> list[socket.socket]:
    """Wait (at most ``bound`` seconds) for each socket's EOF; the ones still open."""
    open_ = {s.fileno(): s for s in socks}
    deadline = time.monotonic() + bound
    while open_ and time.monotonic() < deadline:
        readable, _, _ = select.select(list(open_.values()), [], [], 1.0)
        for s in readable:
            try:
                data = s.recv(4096)
            except ConnectionResetError:
                data = b""
            if not data:
                del open_[s.fileno()]
    return list(open_.values())


def _status(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code


def test_idle_and_half_sent_connections_are_closed_and_the_limit_answers_503(
    tmp_path: Path,
) -> None:
    with running_netmon(tmp_path) as (port, proc):
        socks = [_connect(port) for _ in range(200)]  # connect, then nothing
        socks += [_connect(port, HALF_SENT) for _ in range(200)]  # headers never finished
        try:
            assert _status(port) == 200  # 400 held connections: still under the limit
            socks += [_connect(port) for _ in range(LIMIT_CONCURRENCY - len(socks))]
            assert _status(port) == 503  # past the limit: refused at once, not queued
            left = _closed_by_server(socks, bound=HEADER_TIMEOUT * 4)
            assert not left, f"{len(left)} of {len(socks)} connections still open"
            assert _status(port) == 200  # they were the server's doing, and it recovered
        finally:
            for s in socks:
                s.close()
        assert proc.poll() is None
        assert stop(proc) == 0


def test_a_slow_but_complete_request_is_answered(tmp_path: Path) -> None:
    with running_netmon(tmp_path) as (port, proc):
        with _connect(port) as s:
            for part in (b"GET /healthz HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
                s.sendall(part)
                time.sleep(HEADER_TIMEOUT / 10)  # slow, but well inside the deadline
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
        assert stop(proc) == 0
