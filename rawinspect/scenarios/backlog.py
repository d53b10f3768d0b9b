"""Listen backlog overflow: the two queues of listen(), and a full accept queue.

A listening socket keeps two queues. The SYN queue holds the requests whose handshake
is under way (SYN_RCVD: the SYN came, the SYN+ACK went, the final ACK has not); on
Linux it is bounded by the backlog and by net.ipv4.tcp_max_syn_backlog. The accept
queue holds the connections whose handshake is complete and that accept() has not yet
taken; it is bounded by listen()'s backlog (capped by net.core.somaxconn), and Linux
lets backlog + 1 connections wait there.

Here listen(1) and a server that does not call accept() for about a second. Client 1
completes its handshake at once. Clients 2 and 3 connect while the accept queue still
has room, but their final ACK is delayed until their request goes out (TCP_DEFER_ACCEPT
on the client socket lets the kernel save that ACK). Client 2's request completes its
handshake and fills the accept queue; client 3's arrives at a full queue. With
net.ipv4.tcp_abort_on_overflow = 0 (the default) the kernel drops it without a word:
client 3 believes it is ESTABLISHED (connect() has returned), while the server's side
is still a request in SYN_RCVD. The server retransmits its SYN+ACK, the client its
request; once accept() makes room, the next one gets through and the server's side
becomes ESTABLISHED. Client 4's SYN finds the SYN queue full: without SYN cookies the
kernel drops it (the client retransmits its SYN after 1 s, 3 s...); with
net.ipv4.tcp_syncookies = 1 it answers with a SYN cookie and keeps no request at all,
so no SYN+ACK is retransmitted: only the client's request, sent again until one gets
in. The lesson runs twice, without and with SYN cookies, and puts the setting back.
"""

from __future__ import annotations

import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .call_checks import Calls
from .base import CLIENT_CLOSES, Check, Context, Expect, Observed, Scenario, in_thread

SYNCOOKIES = "/proc/sys/net/ipv4/tcp_syncookies"
CLIENTS = 4
ACCEPT_AFTER = 0.95   # after the request's first retransmission, before the SYN+ACK's


def server(listener: socket.socket) -> None:
    time.sleep(ACCEPT_AFTER)            # busy: nobody calls accept()
    for _ in range(CLIENTS):
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"reply to " + conn.recv(1024))
            conn.recv(1024)             # EOF: the client closes first
    listener.close()


def client(ctx: Context, port: int, i: int, go: threading.Event) -> None:
    s = ctx.socket()
    if i > 1:                           # the final ACK waits for the request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 1)
    started = time.monotonic()
    s.connect((ctx.host, port))
    ctx.say(f"client {i}: connect() returned after {time.monotonic() - started:.2f} s")
    go.wait(5)
    time.sleep(0.02 * i)                # requests in order: 2 fills the queue, 3 meets it full
    s.sendall(b"request %d" % i)
    started = time.monotonic()
    s.recv(1024)
    ctx.say(f"client {i}: reply after {time.monotonic() - started:.2f} s")
    s.close()


def one_round(ctx: Context, port: int) -> None:
    """listen(1), then four clients, their requests sent in turn once every one has
    connected (or after 50 ms, the SYN that got no answer)."""
    listener = ctx.listener(backlog=1, port=port)
    t = in_thread(server, listener)
    go = threading.Event()
    clients = []
    for i in range(CLIENTS):
        clients.append(in_thread(client, ctx, port, i + 1, go))
        time.sleep(0.02)
    time.sleep(0.05)
    go.set()
    for c in clients:
        c.join(15)
    t.join(15)


@contextmanager
def syncookies(ctx: Context, value: int) -> Iterator[bool]:
    """net.ipv4.tcp_syncookies = value for the block, put back afterwards (also on
    SIGTERM); yields whether it could be set."""
    try:
        with open(SYNCOOKIES) as f:
            before = f.read().strip()
        with open(SYNCOOKIES, "w") as f:
            f.write(str(value))
    except OSError as e:
        ctx.say(f"tcp_syncookies left as it is ({e.strerror})")
        yield False
        return
    old = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        yield True
    finally:
        with open(SYNCOOKIES, "w") as f:
            f.write(before)
        signal.signal(signal.SIGTERM, old)


def run(ctx: Context) -> None:
    for n, value in enumerate((0, 1)):
        with syncookies(ctx, value) as done:
            ctx.data[f"round {n + 1}"] = value if done else None
            one_round(ctx, ctx.ports[n])
        time.sleep(0.2)


def _not_taken(o: Observed) -> str | None:
    """The client's first request, when the server's side became ESTABLISHED only on a
    later segment: the full accept queue did not take it."""
    request = next((d[0] for d in o.data if d[1]), None)
    done = next((s.frame for s in o.server_steps if s.state == "ESTABLISHED"), None)
    if request is None or done is None or done <= request:
        return None
    return f"conn {o.conn} (request frame {request}, server ESTABLISHED at frame {done})"


def late_servers(observed: list[Observed], report: dict[str, Any]) -> list[Check]:
    """In each round, at least one client's request met a full accept queue: the
    server's side became ESTABLISHED only on a later segment."""
    out = []
    data = report.get("data", {})
    for n in range(2):
        late = [x for x in map(_not_taken, observed[n * CLIENTS:(n + 1) * CLIENTS]) if x]
        cookies = data.get(f"round {n + 1}")
        what = "unknown" if cookies is None else str(cookies)
        out.append(Check(bool(late) if cookies is not None else None,
                         f"round {n + 1} (tcp_syncookies = {what}): request not taken by "
                         f"the full accept queue: {', '.join(late) or 'none'}"))
    return out


SCENARIOS = [Scenario(
    "backlog", "listen(1), a server slow to accept(): the full accept queue drops the "
    "final ACK (client ESTABLISHED, server still SYN_RCVD), with and without SYN cookies",
    __doc__, run, Expect(findings=('listen-overflow',),
                         no_findings=('connection-refused', 'close-wait-leak'),
                         conns=[[CLIENT_CLOSES]] * (2 * CLIENTS), extra=late_servers,
                         calls=[Calls("listen", args="backlog 1", side="server", times=2),
                                Calls("connect", side="client", times=2 * CLIENTS),
                                Calls("accept|accept4", ">=0", side="server",
                                      times=2 * CLIENTS)]),
    ports=2, timeout=40.0)]
