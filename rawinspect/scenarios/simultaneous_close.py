"""Simultaneous close: both ends call close() at the same instant.

Each FIN leaves before the other arrives, so each side receives a FIN while it is in
FIN_WAIT_1: both go to CLOSING, and when the ACKs of the FINs arrive, both to
TIME_WAIT. On loopback a FIN is delivered within microseconds, so the two close()
calls must reach the kernel closer than that: the two ends run in two processes pinned
to different CPUs, at real-time priority where allowed, spinning on a shared
CLOCK_MONOTONIC deadline. Each attempt is a fresh connection; the report says how
often the race was won.
"""

from __future__ import annotations

import os
import time

from .base import (CLIENT_CLOSES, SERVER_CLOSES, Context, Expect, Path, Scenario,
                   pin_and_prioritise, spin_until, states, unpin)

ATTEMPTS = 5


def close_at(sock, deadline_ns: int) -> None:  # type: ignore[no-untyped-def]
    spin_until(deadline_ns)
    sock.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    granted = ""
    cpus = os.sched_getaffinity(0)
    for _ in range(ATTEMPTS):
        client = ctx.connect()
        server, _ = listener.accept()
        deadline = time.monotonic_ns() + 20_000_000   # both close in 20 ms
        pid = os.fork()
        if pid == 0:                                   # the server's end, on another CPU
            client.close()      # only our copy: the parent still holds it, no FIN
            pin_and_prioritise(1)
            close_at(server, deadline)
            os._exit(0)
        server.close()          # only our copy: the child still holds it, no FIN
        granted = pin_and_prioritise(0)
        close_at(client, deadline)
        unpin(cpus)             # the next child must be free to start on the other CPU
        os.waitpid(pid, 0)
        time.sleep(0.05)
    listener.close()
    ctx.say(f"{ATTEMPTS} attempts; each end pinned and prioritised: {granted}")


SIMULTANEOUS = Path("simultaneous close",
                    states("CLOSED SYN_SENT ESTABLISHED FIN_WAIT_1 CLOSING TIME_WAIT"),
                    states("LISTEN SYN_RCVD ESTABLISHED FIN_WAIT_1 CLOSING TIME_WAIT"))
SCENARIOS = [Scenario(
    "simultaneous-close", "both ends close() at once: FIN_WAIT_1 → CLOSING → TIME_WAIT "
    "on both sides", __doc__, run,
    Expect(each=[SIMULTANEOUS, CLIENT_CLOSES, SERVER_CLOSES], required=SIMULTANEOUS.label,
           zeek=[("SF", "ShA(Ff|fF)a?|ShA(Faf|fAF)")]))]
