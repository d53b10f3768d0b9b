"""Kernel versus inferred states, endpoint by endpoint and segment by segment (pure).

The tracepoint cannot show everything the wire implies, and the wire cannot show
everything the kernel does. Each known gap is filled in explicitly and named:

- TIME_WAIT is never traced: the full socket goes to CLOSE and a time-wait socket (or,
  for an orphan in FIN_WAIT_2, a mini-socket) takes its place. A kernel CLOSE out of
  FIN_WAIT_1, FIN_WAIT_2 or CLOSING where the wire ends in TIME_WAIT counts as TIME_WAIT;
  ``ss`` at the end of the capture confirms the time-wait socket when it is still there.
- A FIN+ACK that acknowledges our FIN moves the kernel FIN_WAIT_1 → FIN_WAIT_2 → (time
  wait) while processing one segment; the wire shows one step, FIN_WAIT_1 → TIME_WAIT.
- A connect() from an unbound socket is traced with source port 0.
- A port with no socket (refused) has nothing to trace.
- Kernel events count for a connection within WINDOW seconds of its segments; for an
  endpoint the wire shows unchanged, only within the connection's own span.
- One 4-tuple can carry several connections (a client bound to a fixed port retries
  connect() after ECONNREFUSED; a 4-tuple reused after TIME_WAIT). Its events are cut
  into the lives of its sockets (a life ends in CLOSED) and each life goes to one of
  them, by time.
- A socket connected to itself is one endpoint ("self"), checked once.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from ..core.annotation import Annotation
from ..core.kernel_event import KernelEvent
from .steps import EndpointSteps
from .steps import Step as WireStep

WINDOW = 1.0    # seconds around a connection's segments in which its kernel events count
LATE = 0.010    # a kernel change further than this from its segment gets explained
DETAIL = 50     # endpoints shown segment by segment; beyond, only disagreeing ones


class Step(NamedTuple):
    """One state in a sequence: the state, when it was entered (None: before the trace
    or filled in), and for the wire the frame that brought it."""
    state: str
    ts: float | None
    frame: int | None = None


@dataclass
class EndpointCheck:
    conn: int
    role: str
    endpoint: str
    inferred: list[Step]
    kernel: list[Step]      # as traced
    notes: list[str]
    agree: bool
    segments: list[str]     # one line per state-changing segment
    agreed: int             # state changes of the wire the kernel confirms


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
        detail = len(self.checks) <= DETAIL
        for c in self.checks:
            out.append(f"conn {c.conn} {c.role} {c.endpoint}: "
                       f"{'agree' if c.agree else 'DISAGREE'}")
            out.append(f"    inferred: {' → '.join(s.state for s in c.inferred)}")
            out.append(f"    kernel:   {' → '.join(s.state for s in c.kernel) or '(none)'}")
            if detail or not c.agree:
                out.extend(f"      {line}" for line in c.segments)
            out.extend(f"    note: {n}" for n in c.notes)
        skew = ("" if self.skew is None
                else f"; trace clock offset checked: {self.skew * 1e6:+.0f} µs")
        changes = sum(len(c.inferred) - 1 for c in self.checks)
        out.append(f"verify: {len(self.checks)} endpoints checked, "
                   f"{sum(c.agreed for c in self.checks)} of {changes} transitions agreed, "
                   f"{self.disagreements} disagreements; {self.lost} kernel events lost{skew}")
        return out


def _inferred(wire: list[WireStep]) -> list[Step]:
    """An endpoint's steps on the wire; the state it started in has no time."""
    return [Step(wire[0].state, None)] + [Step(s.state, s.ts, s.frame) for s in wire[1:]]


def _kernel_steps(events: list[KernelEvent]) -> list[Step]:
    seq: list[Step] = []
    for e in events:
        if not seq:
            seq.append(Step(e.old, None))
        if e.new != seq[-1].state:
            seq.append(Step(e.new, e.ts))
    return seq


def _fill_in(kernel: list[Step], inferred: list[Step], role: str,
             sockets: dict[tuple[str, str], str], key: tuple[str, str]
             ) -> tuple[list[Step], list[str]]:
    """What the tracepoint cannot show, filled in; each fill-in named."""
    notes: list[str] = []
    k = list(kernel)
    wire = [s.state for s in inferred]
    if not k:
        if len(wire) == 1:
            notes.append("no socket on this side, nothing traced: as inferred")
            return list(inferred), notes
        return k, notes
    if role != "server" and k[0].state == "SYN_SENT":
        k.insert(0, Step("CLOSED", None))
        notes.append("CLOSED → SYN_SENT was not traced (before the trace started)")
    if role == "server" and k[0].state == "SYN_RCVD" and wire[0] == "LISTEN":
        k.insert(0, Step("LISTEN", None))
        notes.append("the SYN_RCVD request socket is not traced; its listener was in LISTEN")
    if (wire[-1] == "TIME_WAIT" and k[-1].state == "CLOSED" and len(k) > 1
            and k[-2].state in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING")):
        k[-1] = Step("TIME_WAIT", k[-1].ts)
        seen = sockets.get(key)
        notes.append("TIME_WAIT is not traced: the socket goes to CLOSE and a time-wait "
                     "socket takes its place; " + (
                         f"ss at the end of the capture shows it: {seen}" if seen else
                         "ss no longer shows it at the end of the capture"))
        if (k[-2].state == "FIN_WAIT_2" and inferred[-1].ts is not None
                and k[-1].ts is not None and inferred[-1].ts - k[-1].ts > LATE):
            notes.append(f"orphaned in FIN_WAIT_2 by close() "
                         f"{(inferred[-1].ts - k[-1].ts) * 1e3:.0f} ms before the peer's "
                         "FIN: the kernel traced CLOSE then and went on with a FIN_WAIT_2 "
                         "mini-socket, which the FIN turned into TIME_WAIT")
    ended = _time_wait_ended(k, inferred)
    if ended:
        k = ended
        notes.append("the time-wait socket's end is not traced either: on the wire an RST "
                     "(or its 2MSL timer) took TIME_WAIT to CLOSED")
    states = [s.state for s in k]
    for i in range(1, len(wire)):
        if wire[i - 1:i + 1] == ["FIN_WAIT_1", "TIME_WAIT"] and \
                "FIN_WAIT_2" in states and "FIN_WAIT_2" not in wire:
            del k[states.index("FIN_WAIT_2")]
            notes.append("the kernel passed FIN_WAIT_2 while processing one FIN+ACK that "
                         "acknowledged our FIN; the wire shows one step")
            break
    return k, notes


def _time_wait_ended(kernel: list[Step], inferred: list[Step]) -> list[Step] | None:
    """The kernel's steps with TIME_WAIT put back, when the wire shows TIME_WAIT ended.

    The full socket goes to CLOSE when TIME_WAIT begins, and the time-wait socket that takes
    its place is never traced: not its start, not its end by an RST or by its timer.
    """
    wire = [s.state for s in inferred]
    if (len(wire) < 2 or wire[-2:] != ["TIME_WAIT", "CLOSED"] or len(kernel) < 2
            or kernel[-1].state != "CLOSED"
            or kernel[-2].state not in ("FIN_WAIT_1", "FIN_WAIT_2", "CLOSING")):
        return None
    return kernel[:-1] + [Step("TIME_WAIT", kernel[-1].ts), Step("CLOSED", None)]


def _per_segment(inferred: list[Step], kernel: list[Step]) -> tuple[list[str], int, list[str]]:
    """Pair the wire's state changes with the kernel's, in order; explain the far ones."""
    lines, notes, agreed = [], [], 0
    for i, step in enumerate(inferred[1:], 1):
        k = kernel[i] if i < len(kernel) else None
        if k is None or k.state != step.state:
            lines.append(f"frame {step.frame}: {inferred[i - 1].state} → {step.state}  ✗ "
                         f"kernel: {k.state if k else 'nothing'}")
            continue
        agreed += 1
        if k.ts is None or step.ts is None:
            lines.append(f"frame {step.frame}: → {step.state}  ✓ (filled in)")
            continue
        delta = k.ts - step.ts
        lines.append(f"frame {step.frame}: → {step.state}  ✓ kernel {delta * 1e6:+.0f} µs")
        if delta < -LATE and step.state in ("FIN_WAIT_1", "LAST_ACK"):
            notes.append(f"frame {step.frame}: the kernel entered {step.state} "
                         f"{-delta * 1e3:.0f} ms before its FIN left: the FIN waited behind "
                         "unsent data or a zero window")
    return lines, agreed, notes


class _Endpoint(NamedTuple):
    """One endpoint of one connection as the wire shows it, and when its events count."""
    conn: int
    role: str
    local: str
    remote: str
    inferred: list[Step]
    lo: float
    hi: float
    first_ts: float
    last_ts: float

    @property
    def had_socket(self) -> bool:
        """The wire shows a state change: this endpoint had a socket in the connection."""
        return len(self.inferred) > 1


def _endpoints(anns: list[Annotation]) -> list[_Endpoint]:
    """Both endpoints of every connection, in connection order.

    An endpoint with a socket takes the kernel's events within WINDOW of its segments.
    One the wire shows unchanged had no socket: only events inside the connection's own
    span could contradict that.
    """
    by_conn: dict[int, list[Annotation]] = defaultdict(list)
    for a in anns:
        by_conn[a.conn].append(a)
    out: list[_Endpoint] = []
    for conn, seq in sorted(by_conn.items()):
        steps = EndpointSteps.of(seq)
        first, last = seq[0].seg.ts, seq[-1].seg.ts
        sides = [("client", seq[0].client, seq[0].server),
                 ("server", seq[0].server, seq[0].client)]
        if seq[0].client == seq[0].server:  # connected to itself: one socket
            sides = [("self", seq[0].client, seq[0].client)]
        for role, local, remote in sides:
            inferred = _inferred(steps.of_side("server" if role == "server" else "client"))
            pad = WINDOW if len(inferred) > 1 else 0.0
            out.append(_Endpoint(conn, role, local, remote, inferred, first - pad,
                                 last + pad, first, last))
    return out


def _claimed(ep: _Endpoint, sockets: list[_Endpoint], e: KernelEvent) -> bool:
    """For an endpoint without a socket: ``e`` belongs to another connection's socket on
    the same address pair (a lost simultaneous-open race: each end's connect() is
    refused while the other's is under way, on one 4-tuple)."""
    return any(s.conn != ep.conn and s.lo <= e.ts <= s.hi for s in sockets)


def _kernel_events(ep: _Endpoint, events: list[KernelEvent], sockets: list[_Endpoint],
                   lives: dict[int, list[KernelEvent]]) -> list[KernelEvent]:
    """The kernel's events for this endpoint's socket."""
    if not ep.had_socket:
        return [e for e in events if ep.lo <= e.ts <= ep.hi and e.remote == ep.remote
                and e.local == ep.local and not _claimed(ep, sockets, e)]
    mine = lives.get(ep.conn, [])
    if ep.role != "server":
        mine = _unbound_connect(events, ep.local, ep.remote, ep.first_ts) + mine
    return mine


def _lives(events: list[KernelEvent]) -> list[list[KernelEvent]]:
    """One 4-tuple's events (in the trace's order) cut into its sockets' lives: each ends in
    CLOSED, and the next socket on the 4-tuple starts a new one."""
    lives: list[list[KernelEvent]] = []
    for e in events:
        if not lives or lives[-1][-1].new == "CLOSED":
            lives.append([e])
        else:
            lives[-1].append(e)
    return lives


def _span_gap(life: list[KernelEvent], ep: _Endpoint) -> float:
    """How far a life's events lie from an endpoint's segments (0 when they overlap)."""
    return max(ep.first_ts - life[-1].ts, life[0].ts - ep.last_ts, 0.0)


def _split(owners: list[_Endpoint], events: list[KernelEvent]) -> dict[int, list[KernelEvent]]:
    """The events of one 4-tuple, connection by connection.

    Lives within WINDOW of an owner's segments count. When there are as many lives as
    owners (connections on this 4-tuple with a socket on this side) they pair in time
    order; otherwise each life goes to the nearest owner in time.
    """
    lives = [life for life in _lives(events)
             if any(o.lo <= e.ts <= o.hi for o in owners for e in life)]
    out: dict[int, list[KernelEvent]] = {}
    if len(lives) == len(owners):
        for owner, life in zip(owners, lives):
            out[owner.conn] = life
        return out
    for life in lives:
        owner = min(owners, key=lambda o: _span_gap(life, o))
        out.setdefault(owner.conn, []).extend(life)
    return out


def verify(anns: list[Annotation], events: list[KernelEvent],
           sockets: dict[tuple[str, str], str] | None = None) -> VerifyReport:
    """Compare every endpoint of every connection with the kernel's trace.

    ``sockets``: the kernel's socket table at the end of the capture, (local, remote) →
    state as ``ss`` prints it, used to confirm what the tracepoint cannot show.
    """
    endpoints = _endpoints(anns)
    owners: dict[tuple[str, str], list[_Endpoint]] = defaultdict(list)
    for ep in endpoints:
        if ep.had_socket:
            owners[(ep.local, ep.remote)].append(ep)
    by_pair: dict[tuple[str, str], list[KernelEvent]] = defaultdict(list)
    for e in events:       # in the trace's order
        by_pair[(e.local, e.remote)].append(e)
    lives = {pair: _split(eps, by_pair[pair]) for pair, eps in owners.items()}
    report = VerifyReport()
    for ep in endpoints:
        pair = (ep.local, ep.remote)
        mine = _kernel_events(ep, events, owners[pair], lives.get(pair, {}))
        report.checks.append(_check(ep, mine, sockets or {}))
    return report


def _check(ep: _Endpoint, mine: list[KernelEvent],
           sockets: dict[tuple[str, str], str]) -> EndpointCheck:
    """One endpoint: the kernel's steps, filled in where the tracepoint cannot see,
    against the wire's."""
    inferred = ep.inferred
    traced = _kernel_steps(mine)
    kernel, notes = _fill_in(traced, inferred, ep.role, sockets, (ep.local, ep.remote))
    if mine and mine[0].local.endswith(":0"):
        notes.insert(0, "CLOSED → SYN_SENT is traced with source port 0: connect() "
                        "picks the port after the state change")
    agree = [s.state for s in kernel] == [s.state for s in inferred]
    segments, agreed, explained = _per_segment(inferred, kernel)
    notes.extend(explained)
    if not agree:
        first = next((i for i, (a, b) in enumerate(zip(kernel, inferred))
                      if a.state != b.state), min(len(kernel), len(inferred)))
        where = inferred[first].frame if first < len(inferred) else None
        notes.append(f"first difference at state {first + 1}"
                     + (f" (frame {where})" if where else "") +
                     ": no known gap between wire and kernel explains it")
    return EndpointCheck(ep.conn, ep.role, ep.local, inferred, traced, notes, agree,
                         segments, agreed)


def _unbound_connect(events: list[KernelEvent], local: str, remote: str,
                     first_ts: float) -> list[KernelEvent]:
    """The CLOSE → SYN_SENT of this client, traced before it had a port (port 0).

    It is the last such event towards ``remote`` before the connection's first segment.
    """
    host = local.rsplit(":", 1)[0]
    cands = [e for e in events if e.new == "SYN_SENT" and e.remote == remote
             and e.local == f"{host}:0" and first_ts - WINDOW <= e.ts <= first_ts + 0.001]
    return cands[-1:]
