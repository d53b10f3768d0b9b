"""Per-connection summaries: Zeek's conn.log fields, both endpoints' TCP states and how
long each was held, the handshake RTT, and who closed first. Pure; fed annotations in
capture order, read at the end."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from ..core.annotation import Annotation
from .zeek import ConnLog, ZeekConn


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
    rtt: float | None             # SYN to the ACK of the SYN+ACK
    timing: dict[str, list[Held]] = field(default_factory=dict)
    letters: list[tuple[str, int]] = field(default_factory=list)
    changes: list[tuple[int, str, list[str]]] = field(default_factory=list)


class _Track:
    __slots__ = ("first", "last", "client_path", "server_path", "changes", "syn_ts", "rtt",
                 "fin_first", "closing")

    def __init__(self, a: Annotation) -> None:
        self.first = a
        self.last = a
        self.client_path: list[tuple[str, float, int]] = [(a.client_before, a.seg.ts,
                                                           a.seg.frame)]
        self.server_path: list[tuple[str, float, int]] = [(a.server_before, a.seg.ts,
                                                           a.seg.frame)]
        self.changes: list[tuple[int, str, list[str]]] = []
        self.syn_ts: float | None = None
        self.rtt: float | None = None
        self.fin_first = "-"
        self.closing: set[str] = set()


def uid(a: Annotation) -> str:
    """A Zeek-style connection uid, stable for the same connection in the same capture."""
    digest = hashlib.sha1(f"{a.seg.ts:.6f}{a.client}{a.server}{a.conn}".encode()).digest()
    return "C" + base64.b32encode(digest).decode()[:17]


class Summaries:
    """Collects what the summaries need, one annotation at a time."""

    def __init__(self) -> None:
        self.log = ConnLog()
        self.tracks: dict[int, _Track] = {}
        self.end = 0.0

    def feed(self, anns: list[Annotation]) -> None:
        for a in anns:
            self.log.feed(a)
            t = self.tracks.get(a.conn)
            if t is None:
                t = self.tracks[a.conn] = _Track(a)
            t.last = a
            ts, frame = a.seg.ts, a.seg.frame
            self.end = max(self.end, ts)
            for who, path, acc in (("client", a.client_path, t.client_path),
                                   ("server", a.server_path, t.server_path)):
                if not path:
                    continue
                moved = [s for s in path[1:] if s != path[0]] or []
                if moved:
                    t.changes.append((frame, who, path))
                    for s in moved:
                        if s != acc[-1][0]:
                            acc.append((s, ts, frame))
                    if "FIN_WAIT_1" in path and t.fin_first == "-":
                        t.fin_first = who
                    if "CLOSING" in path:
                        t.closing.add(who)
            if a.event == "SYN" and t.syn_ts is None and a.from_client:
                t.syn_ts = ts
            if (t.rtt is None and t.syn_ts is not None and a.server_path
                    and a.server_path[-1] == "ESTABLISHED" and "SYN_RCVD" in a.server_path):
                t.rtt = ts - t.syn_ts

    def results(self) -> list[ConnSummary]:
        """One summary per connection, in connection order; times run to the capture's end."""
        out = []
        for cid, t in sorted(self.tracks.items()):
            z: ZeekConn = self.log.conns[cid]
            timing = {who: [Held(s, since, frame, (path[i + 1][1] if i + 1 < len(path)
                                                   else self.end) - since)
                            for i, (s, since, frame) in enumerate(path)]
                      for who, path in (("client", t.client_path), ("server", t.server_path))}
            closed = ("simultaneous" if t.closing == {"client", "server"} else t.fin_first)
            out.append(ConnSummary(
                cid, uid(t.first), z.first_ts, z.last_time - z.first_ts, t.first.client,
                t.first.server, (z.orig.pkts, z.resp.pkts), (z.orig.size(), z.resp.size()),
                z.conn_state(), z.history_string, z.missed_bytes, t.last.client_after,
                t.last.server_after, closed, t.rtt, timing, list(z.history), t.changes))
        return out
