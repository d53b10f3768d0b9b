"""The server closes first, so the server holds TIME_WAIT; then it is restarted.

Whoever calls close() first ends in TIME_WAIT, here the server. Its port stays taken
for 2MSL: a restarted server's bind() fails with EADDRINUSE. SO_REUSEADDR lets the
new listener bind despite the TIME_WAIT sockets; on Linux it works only when the old
sockets had it too, which is why servers set it before the first bind(), always.
Shown twice: without SO_REUSEADDR (first port) and with it (second port).
"""

from __future__ import annotations

import socket

from .call_checks import Calls, StateCause
from .base import (CLIENT_CLOSES, REQUEST_REPLY, SERVER_CLOSES, Context, Expect, Scenario,
                   in_thread, recv_all)


def serve_once(listener: socket.socket, server_closes: bool) -> None:
    conn, _ = listener.accept()
    conn.sendall(b"reply to " + conn.recv(1024))
    if not server_closes:
        recv_all(conn)      # wait for the client's FIN
    conn.close()
    listener.close()        # the server process ends: its port is free... or is it?


def talk(ctx: Context, port: int) -> None:
    s = ctx.connect(port)
    s.sendall(b"request")
    recv_all(s)             # the reply, then EOF: the server closed first
    s.close()


def restart(ctx: Context, port: int, reuse: bool) -> socket.socket | None:
    s = ctx.socket()
    if reuse:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    key = f"restart {'with' if reuse else 'without'} SO_REUSEADDR: bind()"
    if ctx.attempt(key, lambda: s.bind((ctx.host, port))) is None and key in ctx.outcomes \
            and ctx.outcomes[key] != "ok":
        s.close()
        return None
    s.listen(8)
    return s


def run(ctx: Context) -> None:
    for port, reuse in ((ctx.ports[0], False), (ctx.ports[1], True)):
        listener = ctx.listener(reuse=reuse, port=port)
        t = in_thread(serve_once, listener, True)
        talk(ctx, port)
        t.join(5)
        again = restart(ctx, port, reuse)
        if again is not None:   # the restarted server works: one more exchange
            t = in_thread(serve_once, again, False)
            s = ctx.connect(port)
            s.sendall(b"hello again")
            ctx.say(f"restarted server answered {s.recv(1024)!r}")
            s.close()
            t.join(5)


SCENARIOS = [Scenario(
    "server-close", "the server closes first and holds TIME_WAIT; restarting it on that "
    "port: EADDRINUSE without SO_REUSEADDR, success with it", __doc__, run,
    Expect(findings=('time-wait-on-server', 'eaddrinuse'),
           no_findings=('close-wait-leak', 'rst-on-close'),
           conns=[[SERVER_CLOSES], [SERVER_CLOSES], [CLIENT_CLOSES]],
           zeek=[("SF", REQUEST_REPLY + "fF"), ("SF", REQUEST_REPLY + "fF"),
                 ("SF", REQUEST_REPLY + "Ff")],
           outcomes={"restart without SO_REUSEADDR: bind()": "EADDRINUSE",
                     "restart with SO_REUSEADDR: bind()": "ok"},
           calls=[StateCause("server", "FIN_WAIT_1", ("close",)),
                  # the first listener (first port) and the restart on it
                  Calls("bind", "ok", side="server", socket_lacks="setsockopt SO_REUSEADDR"),
                  Calls("bind", "EADDRINUSE", side="server", times=1, exact=True,
                        socket_lacks="setsockopt SO_REUSEADDR"),
                  # the second port's first listener and its restart: both bind
                  Calls("bind", "ok", side="server", times=2,
                        socket_has="setsockopt SO_REUSEADDR"),
                  Calls("bind", "EADDRINUSE", side="server", times=0, exact=True,
                        socket_has="setsockopt SO_REUSEADDR")]),
    ports=2)]
