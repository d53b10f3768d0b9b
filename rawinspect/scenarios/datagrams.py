"""UDP keeps message boundaries; TCP does not.

The same three messages are sent twice: over UDP, three sendto() on one socket to a
server that reads a little later, and over TCP, three send() back to back on one
connection to a server that also reads a little later. UDP: each sendto() is one
datagram on the wire, and each recvfrom() returns exactly one datagram, whole,
whatever waited in the queue: three sendto() → three datagrams → three recvfrom(). (A
datagram bigger than the buffer given to recvfrom() is cut, and a lost one is gone:
UDP keeps boundaries, not delivery.) TCP: the bytes of the three send() calls wait
together in the receive buffer, and one recv() returns them merged: the stream has no
boundaries, so a TCP program must frame its messages (see byte-stream). UDP has no
connection and no states: rawinspect shows its datagrams between the segments, with
their addresses, length and payload, and no states.
"""

from __future__ import annotations

import socket
import time

from .base import CLIENT_CLOSES, Check, Context, Expect, Observed, Scenario, in_thread, recv_all
from .call_checks import Calls, UdpCalls

MESSAGES = [b"one", b"two two", b"three three three"]
LATER = 0.2   # the servers read this long after the messages were sent


def udp_server(ctx: Context, s: socket.socket) -> None:
    time.sleep(LATER)                   # the three datagrams wait in the queue
    got = [s.recvfrom(4096)[0] for _ in MESSAGES]
    ctx.outcome("UDP: recvfrom() results", "3 whole messages" if got == MESSAGES else
                f"{[len(g) for g in got]} bytes")
    s.close()


def tcp_server(ctx: Context, listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with conn:
        time.sleep(LATER)               # the three messages' bytes wait in the buffer
        got = recv_all(conn)
        ctx.outcome("TCP: bytes received", "all" if got == b"".join(MESSAGES) else "not all")
        conn.sendall(b"done")
    listener.close()


def run(ctx: Context) -> None:
    userv = socket.socket(ctx.family, socket.SOCK_DGRAM)
    userv.bind((ctx.host, ctx.ports[1]))
    t = in_thread(udp_server, ctx, userv)
    with socket.socket(ctx.family, socket.SOCK_DGRAM) as u:
        for m in MESSAGES:
            u.sendto(m, (ctx.host, ctx.ports[1]))
        t.join(5)
    listener = ctx.listener()
    t = in_thread(tcp_server, ctx, listener)
    with ctx.connect() as s:
        for m in MESSAGES:
            s.send(m)                   # back to back, no pause
        s.shutdown(socket.SHUT_WR)
        recv_all(s)
    t.join(5)


def tcp_recvs(observed: list[Observed], report: dict[str, object]) -> list[Check]:
    """The lesson's TCP half in words: how many segments carried the three messages."""
    if not observed:
        return []
    data = [d for d in observed[0].data if d[1]]
    return [Check(None, f"TCP: {len(MESSAGES)} send() of "
                        f"{'+'.join(str(len(m)) for m in MESSAGES)} bytes left in "
                        f"{len(data)} segment{'s' if len(data) != 1 else ''}")]


SCENARIOS = [Scenario(
    "datagrams", "UDP keeps message boundaries (3 sendto → 3 datagrams → 3 recvfrom); "
    "TCP merges them", __doc__, run,
    Expect(conns=[[CLIENT_CLOSES]],
           outcomes={"UDP: recvfrom() results": "3 whole messages",
                     "TCP: bytes received": "all"},
           datagrams=[len(m) for m in MESSAGES],
           calls=[UdpCalls([len(m) for m in MESSAGES]),
                  Calls("sendto|send|write", ">0", side="client", times=3),
                  Calls("recvfrom|recv|read", ">0", side="server", times=1, exact=True)],
           extra=tcp_recvs,
           findings=("message-boundaries",), no_findings=("nagle",)),
    ports=2, udp=True)]
