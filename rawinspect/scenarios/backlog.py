"""Listen backlog overflow: more clients than the accept queue holds.

listen(1) on Linux lets 2 finished connections wait for accept(). The server sleeps
before accepting; the first clients complete their handshakes, and the kernel drops
the SYNs of the rest without a word (no RST: the client should simply retry). Their
SYNs are retransmitted after 1 s, 3 s...; once the server accepts, the queue drains
and the retransmitted SYNs get through. (SYN cookies are for a full SYN queue, not a
full accept queue, so they do not appear here.)
"""

from __future__ import annotations

import socket
import threading
import time

from .base import (CLIENT_CLOSES, REQUEST_REPLY, Check, Context, Expect, Observed, Scenario,
                   in_thread)
CLIENTS = 5
ACCEPT_AFTER = 1.5


def server(listener: socket.socket) -> None:
    time.sleep(ACCEPT_AFTER)            # busy: nobody calls accept()
    for _ in range(CLIENTS):
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"reply to " + conn.recv(1024))
            conn.recv(1024)             # EOF: the client closes first
    listener.close()


def client(ctx: Context, i: int) -> None:
    started = time.monotonic()
    s = ctx.connect()
    waited = time.monotonic() - started
    ctx.say(f"client {i}: connect() returned after {waited:.2f} s")
    s.sendall(b"request %d" % i)
    s.recv(1024)
    s.close()


def run(ctx: Context) -> None:
    listener = ctx.listener(backlog=1)
    t = in_thread(server, listener)
    clients = []
    for i in range(CLIENTS):
        clients.append(threading.Thread(target=client, args=(ctx, i + 1), daemon=True))
        clients[-1].start()
        time.sleep(0.05)
    for c in clients:
        c.join(10)
    t.join(10)


def dropped_syns(observed: list[Observed], _report: dict) -> list[Check]:
    retried = sum(1 for o in observed if "retransmission" in o.analysis)
    return [Check(retried > 0, f"{retried} of {len(observed)} clients had their SYN "
                               "dropped and retransmitted")]


SCENARIOS = [Scenario(
    "backlog", "listen(1) and 5 clients: SYNs dropped while the accept queue is full, "
    "then retransmitted", __doc__, run,
    Expect(conns=[[CLIENT_CLOSES]] * CLIENTS, zeek=[("SF", REQUEST_REPLY + "Ff")] * CLIENTS,
           extra=dropped_syns))]
