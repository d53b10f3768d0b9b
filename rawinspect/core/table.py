"""The connection table: 4-tuple → connection, new connections, port reuse, retirement."""

from __future__ import annotations

from collections import deque
from typing import Final

from . import transitions as T
from .connection import Connection, Endpoint
from .segment import ACK, SYN, Segment, reverse_flow

INF: Final = float("inf")
NAMES: Final = 4096   # addresses and server endpoints shared, at most (then forgotten)


class ConnectionTable:
    """Both directions of every open connection, and the finished ones not yet retired.

    Finished connections leave the table once idle ``retire_after`` seconds, so memory
    follows the open connections, not every connection ever seen.
    """

    def __init__(self, retire_after: float) -> None:
        self.retire_after = retire_after
        self.connections = 0       # connections ever started
        # Segment.flow → connection, both directions of each (the client's when the
        # flow is its ckey): no tuple per key, a few MB on tens of thousands.
        self.by_key: dict[bytes, Connection] = {}
        self._retire: deque[Connection] = deque()   # by retire_at
        self.retire_due = INF      # when the oldest retirement is due
        self._names: dict[str, str] = {}   # one string for each address and server seen

    @property
    def tracked(self) -> int:
        """Connections in the table: open ones, and finished ones not yet retired."""
        return len({id(conn) for conn in self.by_key.values()})

    def lookup(self, seg: Segment) -> tuple[Connection, bool]:
        """The connection ``seg`` belongs to (a new one if it starts one), and its side."""
        conn = self.by_key.get(seg.flow)
        flags = seg.flags
        if conn is not None:
            from_client = seg.flow == conn.ckey
            if not (flags & SYN and not flags & ACK) or conn.hold is not None:
                return conn, from_client
            if from_client and not _port_reused(conn, seg):
                return conn, from_client
            if not from_client and (not conn.s.spoke or not conn.finished()):
                return conn, False  # the server's own SYN: simultaneous open
        return self._new_connection(seg)

    def _new_connection(self, seg: Segment) -> tuple[Connection, bool]:
        flags = seg.flags
        if seg.sport == seg.dport and seg.src == seg.dst:
            return self._self_connection(seg)
        if flags & SYN:
            sender_is_client = not flags & ACK
        else:  # mid-stream: the well-known (lower) port is the server's
            sender_is_client = seg.sport >= seg.dport
        if sender_is_client:
            ca, cp, sa, sp = seg.src, seg.sport, seg.dst, seg.dport
            ckey, skey = seg.flow, reverse_flow(seg.flow)
        else:
            ca, cp, sa, sp = seg.dst, seg.dport, seg.src, seg.sport
            ckey, skey = reverse_flow(seg.flow), seg.flow
        ca, sa = self._shared(ca), self._shared(sa)
        if flags & SYN and not flags & ACK:
            c, s = Endpoint(ca, cp, T.CLOSED, False), Endpoint(sa, sp, T.LISTEN, False)
        elif flags & SYN:  # SYN+ACK first: the client's SYN was not captured
            c, s = Endpoint(ca, cp, T.SYN_SENT, True), Endpoint(sa, sp, T.LISTEN, True)
        else:
            c, s = Endpoint(ca, cp, T.ESTABLISHED, True), Endpoint(sa, sp, T.ESTABLISHED, True)
        self.connections += 1
        conn = Connection(self.connections, c, s, ckey, skey)
        conn.server = self._shared(conn.server)
        self.by_key[ckey] = self.by_key[skey] = conn
        return conn, seg.flow == ckey

    def _shared(self, name: str) -> str:
        """The string kept for ``name`` (an address, a server's endpoint): thousands of
        connections with the same server keep one. At most NAMES, then forgotten."""
        names = self._names
        kept = names.get(name)
        if kept is None:
            if len(names) >= NAMES:
                names.clear()
            names[name] = kept = name
        return kept

    def _self_connection(self, seg: Segment) -> tuple[Connection, bool]:
        """A socket connected to itself: one endpoint is both client and server, and
        every segment it sends comes back to it (its flow is its own reverse)."""
        if seg.flags & SYN and not seg.flags & ACK:
            ep = Endpoint(seg.src, seg.sport, T.CLOSED, False)
        else:
            ep = Endpoint(seg.src, seg.sport, T.ESTABLISHED, True)
        self.connections += 1
        conn = Connection(self.connections, ep, ep, seg.flow, seg.flow)
        self.by_key[seg.flow] = conn
        return conn, True

    def finished(self, conn: Connection, ts: float) -> None:
        """Queue a connection that has just finished for retirement."""
        conn.retiring = True
        conn.retire_at = ts + self.retire_after
        self._retire.append(conn)
        self.retire_due = self._retire[0].retire_at

    def evict(self, now: float) -> list[int]:
        """Forget finished connections idle for ``retire_after``; returns their ids.

        A later segment on the same 4-tuple starts a new connection.
        """
        retired: list[int] = []
        retire = self._retire
        while retire and retire[0].retire_at < now:
            conn = retire.popleft()
            if not conn.finished():
                conn.retiring = False
                continue
            if conn.last_ts + self.retire_after >= now:
                conn.retire_at = conn.last_ts + self.retire_after
                retire.append(conn)
                continue
            for key in (conn.ckey, conn.skey):
                if self.by_key.get(key) is conn:
                    del self.by_key[key]
            retired.append(conn.id)
        self.retire_due = retire[0].retire_at if retire else INF
        return retired


def _port_reused(conn: Connection, seg: Segment) -> bool:
    """A client SYN with a new initial sequence number starts a new connection."""
    if conn.c.syn_seq < 0:
        return conn.finished() and conn.processed
    return seg.seq != conn.c.syn_seq
