"""Simultaneous close: both ends call close() at the same instant.

Each FIN leaves before the other arrives, so each side receives a FIN while it is in
FIN_WAIT_1: both go to CLOSING, and when the ACKs of the FINs arrive, both to
TIME_WAIT. On loopback a FIN is delivered within microseconds, so the two close()
calls must reach the kernel closer than that: the two ends run in two processes pinned
to different CPUs, at real-time priority where allowed, spinning on a shared
CLOCK_MONOTONIC deadline. Each attempt is a fresh connection; the report says how
often the race was won and which CPU each end ran on. With fewer than two CPUs (the
process's affinity set) the two ends take turns on one CPU and the race cannot be set
up: the report and the verdict say so; run it on a machine or VM with two CPUs.
"""

from __future__ import annotations

import os
import time

from typing import Any

from .call_checks import StateCause
from .base import (CLIENT_CLOSES, SERVER_CLOSES, Check, Context, Expect, Observed, Path,
                   Scenario, pin_and_prioritise, spin_until, states, unpin)

ATTEMPTS = 5


def one_cpu_note(cpus: set[int]) -> str | None:
    """Why the race cannot be set up with these CPUs, or None when it can."""
    if len(cpus) >= 2:
        return None
    listed = ", ".join(map(str, sorted(cpus))) or "none"
    return (f"only {len(cpus)} CPU available to this process (sched_getaffinity: "
            f"{listed}): both ends take turns on it, so their FINs cannot cross and the "
            "race cannot be set up; run this scenario on a machine or VM with two CPUs")


def cpu_check(observed: list[Observed], report: dict[str, Any]) -> list[Check]:
    """The verdict's line on the setup: a failure naming the cause when one CPU was all
    there was (the race's own check then says "seen in 0")."""
    cpus = report.get("data", {}).get("cpus")
    note = None if cpus is None else one_cpu_note(set(cpus))
    return [] if note is None else [Check(False, note)]


def close_at(sock, deadline_ns: int) -> None:  # type: ignore[no-untyped-def]
    spin_until(deadline_ns)
    sock.close()


def run(ctx: Context) -> None:
    listener = ctx.listener()
    granted = {"client": "", "server": ""}
    cpus = os.sched_getaffinity(0)
    ctx.data["cpus"] = sorted(cpus)
    note = one_cpu_note(cpus)
    if note:
        ctx.say(note)
    for _ in range(ATTEMPTS):
        client = ctx.connect()
        server, _ = listener.accept()
        deadline = time.monotonic_ns() + 20_000_000   # both close in 20 ms
        told, tell = os.pipe()
        pid = os.fork()
        if pid == 0:                                   # the server's end, on another CPU
            client.close()      # only our copy: the parent still holds it, no FIN
            os.write(tell, pin_and_prioritise(1).encode())
            close_at(server, deadline)
            os._exit(0)
        os.close(tell)
        server.close()          # only our copy: the child still holds it, no FIN
        granted["client"] = pin_and_prioritise(0)
        close_at(client, deadline)
        unpin(cpus)             # the next child must be free to start on the other CPU
        os.waitpid(pid, 0)
        granted["server"] = os.read(told, 200).decode() or "unknown"
        os.close(told)
        time.sleep(0.05)
    listener.close()
    ctx.say(f"{ATTEMPTS} attempts; the client's end pinned and prioritised: "
            f"{granted['client']}; the server's end: {granted['server']}")


SIMULTANEOUS = Path("simultaneous close",
                    states("CLOSED SYN_SENT ESTABLISHED FIN_WAIT_1 CLOSING TIME_WAIT"),
                    states("LISTEN SYN_RCVD ESTABLISHED FIN_WAIT_1 CLOSING TIME_WAIT"))
SCENARIOS = [Scenario(
    "simultaneous-close", "both ends close() at once: FIN_WAIT_1 → CLOSING → TIME_WAIT "
    "on both sides", __doc__, run,
    # Not 'time-wait-on-server': an attempt whose race is lost may have the server close
    # first (SERVER_CLOSES is one of the expected paths), and it then holds TIME_WAIT.
    Expect(no_findings=('rst-on-close', 'close-wait-leak'),
           each=[SIMULTANEOUS, CLIENT_CLOSES, SERVER_CLOSES], required=SIMULTANEOUS.label,
           zeek=[("SF", "ShA(Ff|fF)a?|ShA(Faf|fAF)")],
           calls=[StateCause("client", "FIN_WAIT_1|CLOSING|LAST_ACK", ("close",)),
                  StateCause("server", "FIN_WAIT_1|CLOSING|LAST_ACK", ("close",))],
           extra=cpu_check))]
