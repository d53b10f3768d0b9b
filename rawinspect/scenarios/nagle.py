"""Nagle's algorithm meets the delayed ACK: a request written in two small pieces.

The client writes each request as a 4-byte header, then a 4-byte body, then reads the
reply (write-write-read). The header leaves at once. Nagle's algorithm holds the body:
a small segment may not leave while an earlier small one is unacknowledged. The server
has read only the header, has nothing to send, and delays its ACK (40 ms on Linux),
hoping to carry it on a reply. So every request waits about 40 ms for that ACK: a
stall no CPU explains. The same requests on a second connection with TCP_NODELAY leave
at once. The fix: TCP_NODELAY, or one write with the whole request.
"""

from __future__ import annotations

import socket
import time

from .call_checks import Calls
from .base import CLIENT_CLOSES, Context, Expect, Scenario, in_thread, recv_all
from .byte_stream import recv_exact

REQUESTS = 6


def server(ctx: Context, listener: socket.socket) -> None:
    for _ in range(2):
        conn, _ = listener.accept()
        while recv_exact(conn, 8):          # header + body, however they arrive
            conn.sendall(b"reply!!\n")
        conn.close()
    listener.close()


def client(ctx: Context, nodelay: bool) -> None:
    s = ctx.connect()
    if nodelay:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.monotonic()
    for i in range(REQUESTS):
        s.send(b"HDR%d" % i)                # write
        s.send(b"BODY")                     # write: held by Nagle until the ACK
        recv_exact(s, 8)                    # read
    took = time.monotonic() - start
    ctx.say(f"{REQUESTS} requests {'with' if nodelay else 'without'} TCP_NODELAY took "
            f"{took * 1000:.0f} ms")
    s.shutdown(socket.SHUT_WR)
    recv_all(s)
    s.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    client(ctx, nodelay=False)
    client(ctx, nodelay=True)
    t.join(5)


SCENARIOS = [Scenario(
    "nagle", "write-write-read: Nagle's algorithm holds the second small write until "
    "the peer's delayed ACK, 40 ms a request; TCP_NODELAY removes the stall", __doc__, run,
    Expect(findings=("nagle-delayed-ack",),
           no_findings=("retransmission-timeout", "close-wait-leak", "rst-on-close"),
           conns=[[CLIENT_CLOSES], [CLIENT_CLOSES]],
           calls=[Calls("setsockopt", args="TCP_NODELAY", side="client"),
                  Calls("sendto|send|write", "=4", side="client", times=4 * REQUESTS)]))]
