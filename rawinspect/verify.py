"""Kernel versus inferred states, endpoint by endpoint (pure: no tracefs here).

The tracepoint cannot show everything the wire implies, and the wire cannot show
everything the kernel does. Each known gap is filled in explicitly and named:

- TIME_WAIT is never traced: the full socket goes to CLOSE and a time-wait socket (or,
  for an orphan in FIN_WAIT_2, a mini-socket) takes its place. A kernel CLOSE out of
  FIN_WAIT_1, FIN_WAIT_2 or CLOSING where the wire ends in TIME_WAIT counts as TIME_WAIT.
- A FIN+ACK that acknowledges our FIN moves the kernel FIN_WAIT_1 → FIN_WAIT_2 → (time
  wait) while processing one segment; the wire shows one step, FIN_WAIT_1 → TIME_WAIT.
- A connect() from an unbound socket is traced with source port 0.
- A port with no socket (refused) has nothing to trace.
- Kernel events count for a connection within WINDOW seconds of its segments; for an
  endpoint the wire shows unchanged, only within the connection's own span.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from .annotation import Annotation

WINDOW = 1.0  # seconds around a connection's segments in which its kernel events count


class KernelEvent(NamedTuple):
    """One traced state change, on the packets' clock."""
    ts: float
    local: str
    remote: str
    old: str
    new: str


@dataclass
class EndpointCheck:
    conn: int
    role: str
    endpoint: str
    inferred: list[str]
    kernel: list[str]
    notes: list[str]
    agree: bool
    agreed: int          # transitions of the inferred sequence the kernel confirms
    max_delay: float | None  # largest |kernel time - packet time| over matched changes


@dataclass
class VerifyReport:
    checks: list[EndpointCheck] = field(default_factory=list)
    lost: int = 0
    skew: float | None = None

    @property
    def disagreements(self) -> int:
        return sum(not c.agree for c in self.checks)

    def lines(self) -> list[str]:
        out = []
        for c in self.checks:
            head = (f"conn {c.conn} {c.role} {c.endpoint}: "
                    f"{'agree' if c.agree else 'DISAGREE'}")
            delay = "" if c.max_delay is None else f" (kernel within {c.max_delay * 1e3:.2f} ms)"
            out.append(head + delay)
            out.append(f"    inferred: {' → '.join(c.inferred)}")
            out.append(f"    kernel:   {' → '.join(c.kernel) or '(no socket traced)'}")
            out.extend(f"    note: {n}" for n in c.notes)
        skew = "" if self.skew is None else f"; trace clock offset checked: {self.skew * 1e6:+.0f} µs"
        out.append(f"verify: {len(self.checks)} endpoints checked, "
                   f"{sum(c.agreed for c in self.checks)} transitions agreed, "
                   f"{self.disagreements} disagreements; {self.lost} kernel events lost{skew}")
        return out


def _inferred(anns: list[Annotation], client: bool) -> tuple[list[str], list[tuple[float, str]]]:
    first = anns[0]
    seq = [first.client_before if client else first.server_before]
    changes = []
    for a in anns:
        path = a.client_path if client else a.server_path
        for s in (path or ())[1:]:
            if s != seq[-1]:
                seq.append(s)
                changes.append((a.seg.ts, s))
    return seq, changes


def _kernel_sequence(events: list[KernelEvent]) -> list[str]:
    seq: list[str] = []
    for e in events:
        if not seq:
            seq.append(e.old)
        if e.new != seq[-1]:
            seq.append(e.new)
    return seq


def _normalise(kernel: list[str], inferred: list[str], role: str) -> tuple[list[str], list[str]]:
    """Fill in what the tracepoint cannot show; name each fill-in."""
    notes = []
    k = list(kernel)
    if not k:
        if len(inferred) == 1:
            notes.append("no socket on this side, nothing traced: as inferred")
            return list(inferred), notes
        return k, notes
    if role == "client" and k[0] == "SYN_SENT":
        k.insert(0, "CLOSED")
        notes.append("CLOSED → SYN_SENT was not traced (before the trace started)")
    if role == "server" and k[0] == "SYN_RCVD" and inferred[0] == "LISTEN":
        k.insert(0, "LISTEN")
        notes.append("the SYN_RCVD request socket is not traced; its listener was in LISTEN")
    if (inferred[-1] == "TIME_WAIT" and k[-1] == "CLOSED" and len(k) > 1
            and k[-2] in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING")):
        k[-1] = "TIME_WAIT"
        notes.append("TIME_WAIT is not traced: the socket goes to CLOSE and a time-wait "
                     "socket takes its place (ss -tan shows it)")
    for i in range(1, len(inferred)):
        if inferred[i - 1:i + 1] == ["FIN_WAIT_1", "TIME_WAIT"] and \
                "FIN_WAIT_2" in k and "FIN_WAIT_2" not in inferred:
            k.remove("FIN_WAIT_2")
            notes.append("the kernel passed FIN_WAIT_2 while processing one FIN+ACK that "
                         "acknowledged our FIN; the wire shows one step")
            break
    return k, notes


def _unbound_connect(events: list[KernelEvent], local: str, remote: str,
                     first_ts: float) -> list[KernelEvent]:
    """The CLOSE → SYN_SENT of this client, traced before it had a port (port 0).

    It is the last such event towards ``remote`` before the connection's first segment.
    """
    host = local.rsplit(":", 1)[0]
    cands = [e for e in events if e.new == "SYN_SENT" and e.remote == remote
             and e.local == f"{host}:0" and first_ts - WINDOW <= e.ts <= first_ts + 0.001]
    return cands[-1:]


def verify(anns: list[Annotation], events: list[KernelEvent]) -> VerifyReport:
    """Compare every endpoint of every connection with the kernel's trace."""
    by_conn: dict[int, list[Annotation]] = defaultdict(list)
    for a in anns:
        by_conn[a.conn].append(a)
    report = VerifyReport()
    for conn, seq in sorted(by_conn.items()):
        t0, t1 = seq[0].seg.ts - WINDOW, seq[-1].seg.ts + WINDOW
        for role, local, remote in (("client", seq[0].client, seq[0].server),
                                    ("server", seq[0].server, seq[0].client)):
            inferred, changes = _inferred(seq, role == "client")
            # An endpoint the wire shows unchanged had no socket in this connection: only
            # events inside the connection's own span could contradict that (the same
            # 4-tuple may serve another connection a moment later, as in a lost
            # simultaneous-open race).
            lo, hi = (t0, t1) if changes else (seq[0].seg.ts, seq[-1].seg.ts)
            mine = [e for e in events if lo <= e.ts <= hi and e.remote == remote
                    and e.local == local]
            if role == "client" and changes:
                mine = _unbound_connect(events, local, remote, seq[0].seg.ts) + mine
            kernel, notes = _normalise(_kernel_sequence(mine), inferred, role)
            if mine and mine[0].local.endswith(":0"):
                notes.insert(0, "CLOSED → SYN_SENT is traced with source port 0: connect() "
                                "picks the port after the state change")
            agree = kernel == inferred
            agreed = len(inferred) - 1 if agree else next(
                (i for i, (x, y) in enumerate(zip(kernel, inferred)) if x != y),
                min(len(kernel), len(inferred))) - 1
            delays = []
            for ts, state in changes:
                match = [e.ts for e in mine if e.new == state]
                if match:
                    delays.append(min(abs(m - ts) for m in match))
            report.checks.append(EndpointCheck(conn, role, local, inferred,
                                               _kernel_sequence(mine), notes, agree,
                                               max(agreed, 0), max(delays) if delays else None))
    return report
