"""The programs' calls beside the segments: which connection and side each call belongs
to, which call made each state change, which segment explains a failed call, and the
message boundaries each side's calls drew in the byte stream.

``CallLinker.link`` takes the timeline in time order, annotations and calls mixed, and
fills in ``Call.conn``, ``Call.side``, ``Call.cause`` and ``Annotation.cause``. A call
joins a connection by its socket's ports (both ends); a ``connect()`` joins the
connection its SYN starts, which follows it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..core.annotation import Annotation
from ..core.call import CALL, ENTERED, EXIT, RETURNED, Call
from ..core.segment import FIN, RST, SYN

Item = Union[Annotation, Call]
SENDS = frozenset({"write", "send", "sendto", "sendmsg", "writev"})
RECVS = frozenset({"read", "recv", "recvfrom", "recvmsg", "readv"})
# Which calls make a sender's state change, by the segment that shows it.
MAKES = {SYN: ("connect",), FIN: ("close", "shutdown"), RST: ("close", "shutdown")}
SERVER_CALLS = frozenset({"bind", "listen", "accept", "accept4"})
ANSWERED_BY = {"EPIPE": RST, "ECONNRESET": RST, "ECONNREFUSED": RST}
LATE = 0.001   # a FIN this long after its close() or shutdown() returned waited for data


def _late(a: Annotation, call: Call) -> str:
    """What a FIN that left well after its close() or shutdown() returned waited for:
    the data still queued; after close() the kernel sent both for the orphaned socket."""
    if not a.seg.flags & FIN or a.seg.flags & RST or call.end is None \
            or a.seg.ts - call.end < LATE:
        return ""
    after = f"{(a.seg.ts - call.end) * 1000:.0f} ms after it returned"
    if call.name == "close":
        return (f"; sent by the kernel {after}: the closed socket (an orphan, no descriptor "
                "left) sends its queued data, then the FIN")
    return f"; sent {after}, once the data queued before it had left"


def port_of(endpoint: str) -> int:
    """The port of "addr:port" ("[addr]:port"); 0 when there is none ("*", "")."""
    tail = endpoint.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _pair(local: str, peer: str) -> tuple[int, int]:
    return port_of(local), port_of(peer)


class Sizes:
    """A run of byte counts, kept in bounded memory: how many, the total, the first few."""
    SHOWN = 8

    def __init__(self) -> None:
        self.count = 0
        self.total = 0
        self.first: list[int] = []
        self.uniform = True

    def add(self, n: int) -> None:
        if self.first and n != self.first[0]:
            self.uniform = False
        if len(self.first) < self.SHOWN:
            self.first.append(n)
        self.count += 1
        self.total += n

    def text(self, what: str) -> str:
        """``3 send() of 10 bytes``, ``2 segments of 20+10 = 30 bytes``."""
        noun = what if what.endswith(")") or self.count == 1 else what + "s"
        if not self.count:
            return f"no {what if what.endswith(')') else what + 's'}"
        if self.uniform:
            return f"{self.count} {noun} of {self.first[0]} bytes"
        shown = "+".join(map(str, self.first)) + ("+…" if self.count > len(self.first) else "")
        return f"{self.count} {noun} of {shown} = {self.total} bytes"


@dataclass
class Flow:
    """One direction's message boundaries: the sender's writes, the segments, the reads."""
    sends: Sizes = field(default_factory=Sizes)
    segments: Sizes = field(default_factory=Sizes)
    recvs: Sizes = field(default_factory=Sizes)
    peeks: int = 0

    def text(self) -> str:
        """``3 send() of 10 bytes → 1 segment of 30 bytes → 1 recv() of 30 bytes``."""
        peeks = f" (and {self.peeks} MSG_PEEK)" if self.peeks else ""
        return (f"{self.sends.text('send()')} → {self.segments.text('segment')} → "
                f"{self.recvs.text('recv()')}{peeks}")


@dataclass
class _Conn:
    """What the linker knows of one connection."""
    number: int
    client: str
    server: str
    flows: dict[str, Flow] = field(default_factory=lambda: {"c>s": Flow(), "s>c": Flow()})
    last_in: dict[str, dict[int, int]] = field(default_factory=lambda: {"c": {}, "s": {}})
    traced_sides: set[str] = field(default_factory=set)
    shut_down: set[str] = field(default_factory=set)  # sides that shut down for writing
    owner: dict[str, int] = field(default_factory=dict)  # side ("c", "s") → its process

class CallLinker:
    """Links calls and annotations as the timeline passes, in time order."""

    def __init__(self, saved: bool = False) -> None:
        """``saved``: the calls were linked when captured (replay of a saved capture)."""
        self.saved = saved
        self.conns: dict[int, _Conn] = {}
        self._by_pair: dict[tuple[int, int], _Conn] = {}
        self._pending: dict[tuple[int, int], list[Call]] = {}  # calls that may cause a change
        self._side_of_pid: dict[int, str] = {}
        self._udp: set[tuple[int, int]] = set()   # (tgid, fd) of open UDP sockets
        self._exited: set[int] = set()           # processes that have exited
        self.own_ports: set[int] = set()   # local ports of the traced programs' sockets

    def is_own(self, a: Annotation) -> bool:
        """Whether a traced program has a socket on this segment's connection."""
        conn = self.conns.get(a.conn)
        if conn is not None and conn.traced_sides:
            return True
        own = self.own_ports
        return a.seg.sport in own or a.seg.dport in own

    def link(self, items: list[Item]) -> None:
        """Fill in conn, side and cause for a stretch of the timeline."""
        self._connects_ahead(items)
        for item in items:
            if isinstance(item, Call):
                self._call(item)
            else:
                self._annotation(item)

    def _connects_ahead(self, items: list[Item]) -> None:
        """A call on a socket whose connection has not shown yet (socket(), connect())
        joins the connection whose SYN follows it on the same ports."""
        waiting: dict[tuple[int, int], list[Call]] = {}
        for item in items:
            if isinstance(item, Call):
                if item.peer and item.conn is None and not self.saved:
                    waiting.setdefault(_pair(item.local, item.peer), []).append(item)
            elif item.seg.flags & SYN and waiting:
                seg = item.seg
                found = waiting.pop((seg.sport, seg.dport), [])
                if found:
                    self._register(item)
                for call in found:
                    call.conn = item.conn

    def _register(self, a: Annotation) -> _Conn:
        """The connection of ``a``, known from now on by its ports."""
        conn = self.conns.get(a.conn)
        if conn is None:
            conn = self.conns[a.conn] = _Conn(a.conn, a.client, a.server)
            self._by_pair[_pair(a.client, a.server)] = conn
            self._by_pair[_pair(a.server, a.client)] = conn
        return conn

    def _annotation(self, a: Annotation) -> None:
        conn = self._register(a)
        seg = a.seg
        if seg.payload and "retransmission" not in a.analysis:
            conn.flows[a.direction].segments.add(seg.payload)
        receiver = "s" if a.from_client else "c"
        for flag in (RST, FIN):
            if seg.flags & flag:
                conn.last_in[receiver][flag] = seg.frame
        if a.timer_ts:
            a.cause = "CLOSED ← the kernel: TIME_WAIT's 2MSL timer ran out"
        path = a.client_path if a.from_client else a.server_path
        if path and seg.flags & (SYN | FIN | RST) and not (seg.flags & SYN and a.event != "SYN"):
            self._state_cause(a, conn, path[-1])

    def _state_cause(self, a: Annotation, conn: _Conn, state: str) -> None:
        """The call that made the sender's state change, or the kernel on its own."""
        local, peer = (a.client, a.server) if a.from_client else (a.server, a.client)
        flags = a.seg.flags
        wanted = MAKES[SYN if flags & SYN else RST if flags & RST else FIN]
        pending = self._pending.get(_pair(local, peer), [])
        for i in range(len(pending) - 1, -1, -1):
            call = pending[i]
            if call.name in wanted:
                del pending[i]
                side = "client" if a.from_client else "server"
                a.cause = (f"{state} ← {call.name}(fd {call.fd}), pid {call.pid}, {side}"
                           + _late(a, call))
                return
        side_traced = "c" if a.from_client else "s"
        if conn.owner.get(side_traced) in self._exited:
            a.cause = (f"{state} ← the kernel: process {conn.owner[side_traced]} exited "
                       "without close(); exit closed its socket")
        elif side_traced in conn.traced_sides:
            a.cause = f"{state} ← the kernel on its own: no call of the program just before"

    def _call(self, c: Call) -> None:
        if c.local and c.kind == CALL:
            self.own_ports.add(port_of(c.local))
        makes_segment = c.name == "connect" or (  # a refused or non-blocking one too
            c.name in ("close", "shutdown") and not c.failed and c.args != "SHUT_RD")
        if makes_segment and c.peer and c.phase != RETURNED:
            pending = self._pending.setdefault(_pair(c.local, c.peer), [])
            pending.append(c)
            del pending[:-4]
        linked = self.saved  # linked when captured: keep conn, side and cause as shown then
        if linked:
            conn = self.conns.get(c.conn) if c.conn is not None else None
        else:
            conn = self._join(c)
        if c.side:
            self._side_of_pid[c.pid] = c.side
        if c.kind == EXIT:
            self._exited.add(c.tgid)
        if conn is not None and c.side:
            conn.traced_sides.add(c.side[0])
            if c.kind == CALL:
                conn.owner[c.side[0]] = c.tgid
            if c.kind == CALL and c.phase != ENTERED:
                self._count(c, conn)
                if not linked:
                    self._explain(c, conn)

    def _join(self, c: Call) -> _Conn | None:
        """The call's connection, side and addresses (by its socket's ports)."""
        conn = self.conns.get(c.conn) if c.conn is not None else (
            self._by_pair.get(_pair(c.local, c.peer)) if c.peer else None)
        if conn is not None:
            c.conn = conn.number
            c.side = "client" if port_of(c.local) == port_of(conn.client) else "server"
            c.local, c.peer = ((conn.client, conn.server) if c.side == "client"
                               else (conn.server, conn.client))
        elif c.kind == CALL and self._on_udp(c):
            c.side = ""        # UDP has no client and server: no side
        elif c.kind == CALL:
            listening = bool(c.local) and not c.peer   # a listening or bound socket
            c.side = ("server" if c.name in SERVER_CALLS or listening else
                      "client" if c.name == "connect" else self._side_of_pid.get(c.pid, ""))
        else:
            c.side = self._side_of_pid.get(c.pid, "")
        return conn

    def _on_udp(self, c: Call) -> bool:
        """Whether the call is on a UDP socket (its socket() said SOCK_DGRAM; until its
        close(): descriptor numbers are reused)."""
        udp = self._udp
        if c.name == "socket" and c.ret is not None and c.ret >= 0 and c.phase != ENTERED:
            if "SOCK_DGRAM" in c.args:
                udp.add((c.tgid, c.ret))
                return True
            udp.discard((c.tgid, c.ret))
            return False
        key = (c.tgid, c.fd if c.fd is not None else -1)
        if key not in udp:
            return False
        if c.name == "close" and c.phase != ENTERED:
            udp.discard(key)
        return True

    def _count(self, c: Call, conn: _Conn) -> None:
        """Count the call's bytes for the message boundaries; note a shutdown."""
        me = c.side[0]
        flow = conn.flows["c>s" if me == "c" else "s>c"]
        inbound = conn.flows["s>c" if me == "c" else "c>s"]
        if c.name in SENDS and c.ret is not None and c.ret > 0:
            flow.sends.add(c.ret)
        elif c.name in RECVS and c.ret is not None and c.ret > 0:
            if "MSG_PEEK" in c.args:
                inbound.peeks += 1
            else:
                inbound.recvs.add(c.ret)
        if c.name == "shutdown" and c.args != "SHUT_RD" and not c.failed:
            conn.shut_down.add(me)

    def _explain(self, c: Call, conn: _Conn) -> None:
        """The segment behind a failed or ending call's result."""
        me = c.side[0]
        seen = conn.last_in[me]
        if c.errno in ANSWERED_BY and RST in seen:
            c.cause = f"← RST, frame {seen[RST]}"
        elif c.errno == "EPIPE" and me in conn.shut_down:
            c.cause = "← this socket was already shut down for writing"
        elif c.name in RECVS and c.ret == 0 and FIN in seen:
            c.cause = f"← FIN, frame {seen[FIN]}: the peer will send no more"

    def boundaries(self) -> list[tuple[int, str, Flow]]:
        """Each connection's directions that carried data: (conn, "client → server", flow)."""
        out = []
        for number, conn in sorted(self.conns.items()):
            for key, label in (("c>s", "client → server"), ("s>c", "server → client")):
                flow = conn.flows[key]
                if conn.traced_sides and (flow.sends.count or flow.recvs.count or flow.segments.count):
                    out.append((number, label, flow))
        return out
