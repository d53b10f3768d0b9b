"""Abortive close: an RST instead of a FIN.

With SO_LINGER set to {on, 0 s}, close() discards whatever is unsent and sends an RST:
no FIN, no TIME_WAIT, and the peer's next recv() fails with ECONNRESET. close() on a
socket whose receive buffer still holds unread data does the same (RFC 2525, 2.17):
the peer must learn that its data was never read.
"""

from __future__ import annotations

import socket
import struct
import time

from .call_checks import Calls, StateCause
from .base import Context, Expect, Path, Scenario, in_thread, states


def server(ctx: Context, listener: socket.socket) -> None:
    for case in ("SO_LINGER 0", "unread data"):
        conn, _ = listener.accept()
        conn.sendall(b"data the client will never read")
        time.sleep(0.2)     # the client closes meanwhile
        ctx.attempt(f"server recv() after the client's close() with {case}",
                    lambda: conn.recv(1024))
        conn.close()
    listener.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    s = ctx.connect()
    time.sleep(0.1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()               # linger {on, 0}: RST
    s = ctx.connect()
    s.recv(1, socket.MSG_PEEK)  # the server's data has arrived; we never read it
    s.close()               # unread data: RST
    t.join(5)


ABORT = Path("client aborts", states("CLOSED SYN_SENT ESTABLISHED CLOSED"),
             states("LISTEN SYN_RCVD ESTABLISHED CLOSED"))
SCENARIOS = [Scenario(
    "abortive-close", "close() with SO_LINGER {on, 0} or with unread data sends RST, "
    "not FIN: the peer gets ECONNRESET", __doc__, run,
    Expect(findings=('rst-on-close',),
           no_findings=('write-after-peer-close', 'close-wait-leak'),
           conns=[[ABORT], [ABORT]], zeek=[("RSTO", "ShAdR")] * 2,
           calls=[Calls("setsockopt", args="SO_LINGER", side="client"),
                  Calls("close", side="client", socket_has="setsockopt SO_LINGER"),
                  Calls("recvfrom|recv", "any", args="MSG_PEEK", side="client"),
                  StateCause("client", "CLOSED", ("close",)),
                  Calls("recvfrom|recv|read", "ECONNRESET", side="server", times=2,
                        cause="RST")],
           outcomes={"server recv() after the client's close() with SO_LINGER 0":
                     "ECONNRESET",
                     "server recv() after the client's close() with unread data":
                     "ECONNRESET"}))]
