"""A server that leaks its sockets: CLOSE_WAIT piles up, one per client.

Each client sends a request, reads the reply and closes. The server reads the request,
replies, reads again until EOF... and keeps the socket in a list instead of closing
it, as a handler that forgets close() on one path does. Every such socket sits in
CLOSE_WAIT (no timer ends it) and every client in FIN_WAIT_2; a real server runs out
of descriptors (EMFILE) after a few thousand. A fourth client is served by the fixed
handler, which calls close() when recv() returns 0: its connection closes at once. The
lesson must end, so the leaked sockets are closed a second later, as the process's
exit would.
"""

from __future__ import annotations

import socket
import time

from .call_checks import Calls, Silence, StateCause
from .base import CLIENT_CLOSES, Context, Expect, Scenario, in_thread, recv_all

LEAKED = 3
HANG = 1.0


def server(ctx: Context, listener: socket.socket) -> None:
    kept: list[socket.socket] = []
    for i in range(LEAKED + 1):
        conn, _ = listener.accept()
        conn.sendall(b"reply to " + conn.recv(1024))
        recv_all(conn)                  # EOF: the client has closed
        if i < LEAKED:
            kept.append(conn)           # the bug: no close()
        else:
            conn.close()                # the fix
    time.sleep(HANG)
    ctx.say(f"the server held {len(kept)} sockets in CLOSE_WAIT for {HANG:g} s, then "
            "closed them (as its exit would)")
    for conn in kept:
        conn.close()
    listener.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    for _ in range(LEAKED + 1):
        s = ctx.connect()
        s.sendall(b"request")
        s.recv(1024)
        s.close()
    t.join(5 + HANG)


SCENARIOS = [Scenario(
    "close-wait-leak", "a server that forgets close(): one socket in CLOSE_WAIT per "
    "client, until the process exits", __doc__, run,
    Expect(findings=("close-wait-leak", "fin-wait-2-hang"),
           no_findings=("rst-on-close", "write-after-peer-close", "time-wait-on-server"),
           conns=[[CLIENT_CLOSES]] * (LEAKED + 1),
           calls=[Calls("recvfrom|recv|read", "=0", side="server", times=LEAKED + 1,
                        cause="FIN"),
                  Silence("server", HANG * 0.9),
                  StateCause("server", "LAST_ACK", ("close",))]))]
