"""Half-close: shutdown(SHUT_WR) versus close().

shutdown(SHUT_WR) sends a FIN but keeps the socket open for reading: the client sits
in FIN_WAIT_2 while the server, in CLOSE_WAIT, goes on sending its reply after it
has read EOF. close() instead gives up both directions: when the server's reply
arrives at the closed socket, the client's kernel answers RST and the server's next
send fails with EPIPE.
"""

from __future__ import annotations

import socket
import time

from .call_checks import Calls, StateCause
from .base import (CLIENT_ACTIVE, SERVER_PASSIVE, Check, Context, Expect, Observed, Path,
                   Scenario, in_thread, recv_all, states)


def server(ctx: Context, listener: socket.socket) -> None:
    for case in ("shutdown", "close"):
        conn, _ = listener.accept()
        request = recv_all(conn)        # read until EOF: the client's FIN
        for part in range(3):           # ...and keep sending afterwards
            ctx.attempt(f"{case}: server send {part + 1} after EOF",
                        lambda: conn.sendall(b"reply part %d to %s\n" % (part, request)))
            time.sleep(0.05)
        conn.close()
    listener.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    t = in_thread(server, ctx, listener)
    s = ctx.connect()
    s.sendall(b"request")
    s.shutdown(socket.SHUT_WR)          # FIN, but we can still read
    reply = recv_all(s)
    ctx.say(f"after shutdown(SHUT_WR) the client still read {len(reply)} bytes")
    s.close()
    s = ctx.connect()
    s.sendall(b"request")
    s.close()                           # FIN, and nothing more can be read
    t.join(5)


AFTER_CLOSE = Path("close(): reply answered by RST",
                   states("CLOSED SYN_SENT ESTABLISHED FIN_WAIT_1 FIN_WAIT_2? CLOSED"),
                   states("LISTEN SYN_RCVD ESTABLISHED CLOSE_WAIT CLOSED"))


def replies_after_eof(observed: list[Observed], _report: dict) -> list[Check]:
    first = observed[0] if observed else None
    n = sum(1 for _f, from_client, _s, _l in (first.data if first else ()) if not from_client)
    return [Check(n >= 3, f"conn 1: the server sent {n} data segments after the "
                          "client's FIN, while in CLOSE_WAIT")]


SCENARIOS = [Scenario(
    "half-close", "shutdown(SHUT_WR) lets the peer keep sending after EOF; close() "
    "answers the late reply with RST", __doc__, run,
    Expect(findings=('write-after-peer-close',),
           no_findings=('half-close-misuse', 'close-wait-leak', 'rst-on-close'),
           conns=[[Path("shutdown(SHUT_WR): half-close", CLIENT_ACTIVE, SERVER_PASSIVE)],
                  [AFTER_CLOSE]],
           zeek=[("SF", "ShAD(aF|Fa)df"), ("RSTO", "ShAD(aF|Fa)dR")],
           outcomes={"shutdown: server send 3 after EOF": "ok",
                     "close: server send 1 after EOF": "ok",
                     "close: server send 3 after EOF": "EPIPE"},
           calls=[Calls("shutdown", args="SHUT_WR", side="client"),
                  StateCause("client", "FIN_WAIT_1", ("shutdown", "close")),
                  Calls("recvfrom|recv|read", "=0", side="server", times=2, cause="FIN"),
                  Calls("sendto|send|write", ">0", side="server", times=4),
                  Calls("sendto|send|write", "EPIPE", side="server", cause="RST")],
           extra=replies_after_eof))]
