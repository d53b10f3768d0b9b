"""Short connections (one per request) versus one long connection for many requests.

Every short connection pays a handshake and a teardown, and leaves a TIME_WAIT socket
behind on the side that closed first (here the client: five requests, five TIME_WAIT
sockets). A long connection pays once and carries the same five requests in between.
"""

from __future__ import annotations

import socket

from .call_checks import Calls, StateCause
from .base import (CLIENT_CLOSES, REQUEST_REPLY, Check, Context, Expect, Observed, Scenario,
                   in_thread)
REQUESTS = 5


def server(listener: socket.socket) -> None:
    for _ in range(REQUESTS + 1):
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as f:
            for line in f:              # one reply per request line, until EOF
                conn.sendall(b"reply to " + line)
    listener.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, listener)
    for i in range(REQUESTS):           # short: one connection per request
        with ctx.connect() as s:
            s.sendall(b"request %d\n" % i)
            s.recv(1024)
    with ctx.connect() as s:            # long: every request on one connection
        for i in range(REQUESTS):
            s.sendall(b"request %d\n" % i)
            s.recv(1024)
    t.join(5)


def compare(observed: list[Observed], _report: dict) -> list[Check]:
    short = observed[:REQUESTS]
    long = observed[REQUESTS:]
    n_short = sum(len(o.frames) for o in short)
    n_long = sum(len(o.frames) for o in long)
    return [Check(len(long) == 1 and n_long < n_short,
                  f"{REQUESTS} requests: {len(short)} short connections took {n_short} "
                  f"segments and left {len(short)} TIME_WAIT sockets; one long connection "
                  f"took {n_long} segments and left 1")]


SCENARIOS = [Scenario(
    "short-long", "one connection per request versus one connection for all requests",
    __doc__, run, Expect(no_findings=('close-wait-leak', 'rst-on-close', 'message-boundaries'),
                         conns=[[CLIENT_CLOSES]] * (REQUESTS + 1),
                         zeek=[("SF", REQUEST_REPLY + "Ff")] * (REQUESTS + 1),
                         calls=[Calls("connect", side="client", times=REQUESTS + 1, exact=True),
                                Calls("accept|accept4", ">=0", side="server",
                                      times=REQUESTS + 1, exact=True),
                                Calls("sendto|send|write", ">0", side="client",
                                      times=2 * REQUESTS, exact=True),
                                StateCause("client", "FIN_WAIT_1", ("close",))],
                         extra=compare))]
