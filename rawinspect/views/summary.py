"""Per-connection summaries: Zeek's conn.log fields, both endpoints' TCP states and how
long each was held, the handshake RTT, and who closed first. Pure; fed annotations in
capture order, read at the end (a connection the tracker retired is summed up then)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from ..core.annotation import Annotation
from ..core.datagram import Datagram
from ..core.tracker import DEFAULT_MSL
from .spill import SortedSpill
from .steps import Change, EndpointSteps, Step, StepLog
from .wireshark import HandshakeRtt
from .udp_flows import UdpFlows
from .zeek import ConnLog, ZeekConn, ZeekRow, uid as zeek_uid


@dataclass
class Held:
    """One state of one endpoint: entered at ``since`` (frame), for ``seconds``."""
    state: str
    since: float
    frame: int
    seconds: float


@dataclass
class ConnSummary:
    conn: int
    uid: str
    start: float
    duration: float
    client: str
    server: str
    pkts: tuple[int, int]         # client → server, server → client
    bytes: tuple[int, int]        # payload bytes from sequence numbers, as Zeek
    conn_state: str
    history: str
    missed_bytes: int
    client_final: str
    server_final: str
    closed_first: str             # "client", "server", "simultaneous" or "-"
    rtt: float | None             # the handshake RTT, as wireshark.HandshakeRtt
    timing: dict[str, list[Held]] = field(default_factory=dict)
    letters: list[tuple[str, int]] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    zeek: list[ZeekRow] = field(default_factory=list)   # the rows Zeek logs for it


class _Track:
    """What one connection's summary collects beside Zeek's record (its first annotation
    is not kept: thousands of them would hold their segments to the end); ``detail``
    None for Zeek's conn.log alone."""

    __slots__ = ("first_ts", "client", "server", "detail")

    def __init__(self, a: Annotation, detail: bool, changes: bool) -> None:
        self.first_ts = a.seg.ts      # for its uid, made when summarized (not a string each)
        self.client = a.client
        self.server = a.server
        self.detail = _Detail(a, changes) if detail else None


class _Detail:
    """A connection's endpoint steps, handshake RTT and closing order."""

    __slots__ = ("steps", "handshake", "heard_client", "heard_server", "fin_first", "closing")

    def __init__(self, a: Annotation, changes: bool) -> None:
        self.steps = EndpointSteps(a, changes)
        self.handshake = HandshakeRtt()
        self.heard_client = self.heard_server = False   # has sent a segment
        self.fin_first = "-"
        self.closing = 0              # bits: the client (1), the server (2) went CLOSING

    def feed(self, a: Annotation) -> None:
        """The next annotation of the connection."""
        for change in self.steps.feed(a):
            if "FIN_WAIT_1" in change.path and self.fin_first == "-":
                self.fin_first = change.who
            if "CLOSING" in change.path:
                self.closing |= 1 if change.who == "client" else 2
        if not self.handshake.rtt:
            peer_heard = self.heard_server if a.from_client else self.heard_client
            self.handshake.feed(a.seg.flags, a.seg.ts, peer_heard)
        if a.from_client:
            self.heard_client = True
        else:
            self.heard_server = True


# Both endpoints' steps (EndpointSteps.client_log, .server_log).
BothSteps = tuple[StepLog, StepLog]
# A retired connection's summary, made but not timed, and its steps (with detail).
Done = tuple[ConnSummary, BothSteps | None]


def held_times(both: BothSteps, end: float, time_wait: float) -> dict[str, list[Held]]:
    """How long each endpoint held each state, the last one until ``end``; a TIME_WAIT
    that ``end`` outlasts ends after ``time_wait`` (2MSL), in CLOSED."""
    out: dict[str, list[Held]] = {}
    for who, log in (("client", both[0]), ("server", both[1])):
        steps = log.steps()
        last = steps[-1]
        if last.state == "TIME_WAIT" and end > last.ts + time_wait:
            steps = steps + [Step("CLOSED", last.ts + time_wait, last.frame)]
        ends = [s.ts for s in steps[1:]] + [end]
        out[who] = [Held(s.state, s.ts, s.frame, until - s.ts)
                    for s, until in zip(steps, ends)]
    return out


def uid_of(ts: float, client: str, server: str, conn: int) -> str:
    """The uid of connection ``conn`` whose first segment came at ``ts``."""
    return zeek_uid(f"{ts:.6f}{client}{server}{conn}")


class Summaries:
    """Collects what the summaries need, one annotation at a time.

    Without ``detail`` (Zeek's conn.log, which prints nothing else), only Zeek's records
    are kept: no endpoint steps, timing, RTT or closing order (those fields stay empty).
    Without ``changes``, neither the change events nor the history letters' frames, which
    only ``--explain`` prints (``ConnSummary.changes`` and ``letters`` stay empty).
    """

    def __init__(self, time_wait: float = 2 * DEFAULT_MSL, detail: bool = True,
                 changes: bool = True) -> None:
        self.time_wait = time_wait
        self.detail = detail
        self.changes = changes
        self.log = ConnLog()
        self.tracks: dict[int, _Track] = {}
        self.udp = UdpFlows()
        self.end = 0.0
        # replay --jobs: the workers' summaries, merged as they are read (once).
        self.merged: Iterable[ConnSummary] | None = None
        # The retired connections' summaries, made but not timed, and their steps, by
        # connection (on disk once there are thousands).
        self.done: SortedSpill[Done] = SortedSpill()

    def feed(self, anns: list[Annotation]) -> None:
        """The next annotations of the run, in capture order."""
        for a in anns:
            self.log.feed(a)
            t = self.tracks.get(a.conn)
            if t is None:
                t = self.tracks[a.conn] = _Track(a, self.detail, self.changes)
            if t.detail is not None:
                t.detail.feed(a)
            self.end = max(self.end, a.seg.ts)

    def feed_datagrams(self, datagrams: list[Datagram]) -> None:
        """The next UDP datagrams of the run (their flows: ``udp.rows``)."""
        self.udp.feed(datagrams)
        self.end = max(self.end, datagrams[-1].ts)

    def retire(self, conns: list[int]) -> None:
        """Connections that will see no more annotations: their summaries are made now
        but for the time in each state (it runs to the capture's end), without the
        history letters and change events that only ``--explain`` reads, and their
        records go."""
        for cid in conns:
            t = self.tracks.pop(cid, None)
            if t is None:
                continue
            steps = t.detail.steps if t.detail is not None else None
            both = (steps.client_log, steps.server_log) if steps is not None else None
            self.done.add(cid, (self._summary(cid, t, explained=False), both))
            self.log.forget(cid)

    def steps(self, conn: int) -> EndpointSteps:
        """Connection ``conn``'s endpoints' steps, as fed so far (with ``detail``)."""
        detail = self.tracks[conn].detail
        assert detail is not None, "steps are kept with detail only"
        return detail.steps

    def results(self) -> list[ConnSummary]:
        """One summary per connection, in connection order; times run to the capture's end."""
        return list(self.each())

    def each(self) -> Iterator[ConnSummary]:
        """The summaries of ``results``, made one at a time (a printer holds none of them)."""
        if self.merged is not None:
            yield from self.merged
            return
        tracks = self.tracks
        for cid, done in self.done.among(sorted(tracks)):
            if done is None:
                t = tracks[cid]
                steps = t.detail.steps if t.detail is not None else None
                yield self._timed(self._summary(cid, t, self.changes),
                                  None if steps is None else (steps.client_log, steps.server_log))
            else:   # a copy timed: the kept summary would hold its timing to the end
                s, both = done
                yield self._timed(copy.copy(s), both)

    def _summary(self, cid: int, t: _Track, explained: bool) -> ConnSummary:
        """Connection ``cid``'s summary as fed so far, but for ``_timed``'s fields;
        ``explained``: with what only ``--explain`` reads (the history letters' frames,
        the change events)."""
        z: ZeekConn = self.log.conns[cid]
        closed, changes, rtt, d = "-", [], None, t.detail
        if d is not None:
            closed = "simultaneous" if d.closing == 3 else d.fin_first
            changes, rtt = d.steps.changes, d.handshake.rtt or None
        return ConnSummary(
            cid, uid_of(t.first_ts, t.client, t.server, cid), z.first_ts,
            z.last_time - z.first_ts, t.client, t.server, (z.orig.pkts, z.resp.pkts),
            (z.orig.size(), z.resp.size()), z.conn_state(), z.letters, z.missed_bytes,
            "-", "-", closed, rtt, {},
            z.history if explained else [], changes if explained else [], self.log.rows(cid))

    def _timed(self, s: ConnSummary, steps: BothSteps | None) -> ConnSummary:
        """``s`` with each endpoint's time in each state and its final state, to the
        capture's end (with detail: both endpoints' ``steps``)."""
        if steps is not None:
            s.timing = held_times(steps, self.end, self.time_wait)
            s.client_final = s.timing["client"][-1].state
            s.server_final = s.timing["server"][-1].state
        return s
