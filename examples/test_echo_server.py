"""The echo server's TCP behaviour, checked with rawinspect's pytest plugin.

Run with ``pytest examples/`` as root (or with CAP_NET_RAW): the ``tcp_capture`` fixture
captures the server's port on loopback while each test runs. The second test shows the
bug: it is expected to fail, and ``pytest --runxfail examples/`` shows its report (the
server's socket left in CLOSE_WAIT, the ladder, and where the capture was saved).
"""

from __future__ import annotations

import socket
from typing import Iterator

import pytest

from echo_server import EchoServer


def talk(port: int) -> None:
    """One client: connect, send, read the echo, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
        client.sendall(b"ping")
        assert client.recv(4) == b"ping"


@pytest.fixture(params=[False, True], ids=["fixed", "forgets-to-close"])
def server(request: pytest.FixtureRequest) -> Iterator[EchoServer]:
    if request.param:
        request.applymarker(pytest.mark.xfail(strict=True, raises=AssertionError,
                                              reason="the bug: accepted sockets never closed"))
    echo = EchoServer(forget_to_close=request.param)
    yield echo
    echo.close()


@pytest.fixture
def tcp_capture_ports(server: EchoServer) -> list[int]:
    """Capture the server's port only (the plugin's tcp_capture reads this fixture)."""
    return [server.port]


def test_echo_server_closes_cleanly(server, tcp_capture):
    talk(server.port)
    tcp_capture.assert_closed_cleanly()
    tcp_capture.assert_no_reset()
    (conn,) = tcp_capture.connections
    conn.assert_states(server=["LISTEN", "SYN_RCVD", "ESTABLISHED", "CLOSE_WAIT",
                               "LAST_ACK", "CLOSED"])
