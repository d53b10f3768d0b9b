"""Simultaneous open: two sockets connect() to each other at the same instant.

Nobody listens. Each side binds its own port and connects to the other's; when the
SYNs cross, each arrives at a socket in SYN_SENT, which answers SYN+ACK and moves to
SYN_RCVD; each SYN+ACK then completes the other side: ESTABLISHED on both, one
connection, no server. If one SYN arrives before the other side has sent its own, it
finds no socket in SYN_SENT and is refused (RST). The two connect() calls run in two
processes pinned to different CPUs, released by a shared deadline; each attempt uses
a fresh pair of ports, and the report says how often the race was won.
"""

from __future__ import annotations

import os
import socket
import time

from .call_checks import Calls, StateCause
from .base import (Context, Expect, Path, Scenario, pin_and_prioritise, recv_all,
                   spin_until, states, unpin)

ATTEMPTS = 5


def bound(ctx: Context, port: int) -> socket.socket:
    s = ctx.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((ctx.host, port))
    return s


def run(ctx: Context) -> None:
    cpus = os.sched_getaffinity(0)
    won = 0
    for i in range(ATTEMPTS):
        port_a, port_b = ctx.ports[2 * i], ctx.ports[2 * i + 1]
        a, b = bound(ctx, port_a), bound(ctx, port_b)
        deadline = time.monotonic_ns() + 20_000_000
        pid = os.fork()
        if pid == 0:                    # B, on the other CPU
            a.close()
            pin_and_prioritise(1)
            spin_until(deadline)
            try:
                b.connect((ctx.host, port_a))
            except ConnectionRefusedError:
                os._exit(1)
            recv_all(b)                 # A closes first
            b.close()
            os._exit(0)
        b.close()
        pin_and_prioritise(0)
        spin_until(deadline)
        try:
            a.connect((ctx.host, port_b))
            connected = True
        except ConnectionRefusedError:
            connected = False
        unpin(cpus)
        a.close()
        _, status = os.waitpid(pid, 0)
        if connected and os.WEXITSTATUS(status) == 0:
            won += 1
        time.sleep(0.05)
    ctx.say(f"both connect() calls succeeded in {won} of {ATTEMPTS} attempts")
    ctx.data["won"] = won


OPEN = "CLOSED SYN_SENT SYN_RCVD ESTABLISHED"
SIM_OPEN = [
    Path("simultaneous open", states(OPEN + " FIN_WAIT_1 FIN_WAIT_2? TIME_WAIT"),
         states(OPEN + " CLOSE_WAIT LAST_ACK CLOSED")),
    Path("simultaneous open", states(OPEN + " CLOSE_WAIT LAST_ACK CLOSED"),
         states(OPEN + " FIN_WAIT_1 FIN_WAIT_2? TIME_WAIT")),
]
LOST = Path("race lost: refused", states("CLOSED SYN_SENT CLOSED"), states("CLOSED"))
SCENARIOS = [Scenario(
    "simultaneous-open", "two sockets connect() to each other at once: SYN_SENT → "
    "SYN_RCVD → ESTABLISHED on both", __doc__, run,
    Expect(no_findings=('listen-overflow', 'time-wait-on-server', 'self-connect'),
           each=SIM_OPEN + [LOST], required="simultaneous open",
           zeek=[("SF", "Ss(Aa|aA)(Ff|fF)"), ("REJ", "Sr")],
           calls=[Calls("bind", times=2 * ATTEMPTS, exact=True),
                  Calls("listen", times=0, exact=True),
                  Calls("connect", "ok", times=2),
                  StateCause("client", "SYN_SENT", ("connect",)),
                  StateCause("server", "SYN_SENT|SYN_RCVD", ("connect",))]),
    ports=2 * ATTEMPTS)]
