"""Synthetic captures for scripts/bench_replay.py, deterministic for a seed.

Two mixes:

- ``realistic`` (the default): traffic as a busy server's capture shows it. About 400 new
  connections per second, Poisson arrivals; keep-alive connections with heavy-tailed
  (Pareto) request counts, response sizes and think times, so thousands are open at once;
  every SYN with MSS, SACK-permitted, timestamps and window scale, about a fifth without
  timestamps (20- and 32-byte TCP headers mix); responses in full-size segments (1448
  bytes with timestamps, 1460 without) beside small requests; slow start; delayed ACKs
  (every second segment, or a 40 ms timer) and ACKs piggy-backed on the next request; a
  few tenths of a percent of segments lost (duplicate ACKs with SACK blocks and a fast
  retransmit, or a 200 ms retransmission timeout for a flight's last segment) and about as
  many pairs reordered; every kind of ending (4-way, 3-way, server first, half-close,
  simultaneous, RST from either side, refused, SYN only, never closed) and connections
  already open when the capture starts; about 10 % IPv6; the capture ends wherever the
  packet count does, mid-connection.
- ``simple``: the first benchmark's mix: small exchanges on thousands of interleaved
  connections, no TCP options beyond the SYN's, 10 µs apart.

Packets are made lazily (one generator per open connection, merged in time order by a
heap), so the generator's memory follows the open connections, not the file's size.
"""

from __future__ import annotations

import heapq
import random
import socket
import struct
from pathlib import Path
from typing import Iterator

S, A, F, R, P = 0x02, 0x10, 0x01, 0x04, 0x08

# (time, from_client, flags, seq, ack, payload length, TCP option bytes)
Pkt = tuple[float, bool, int, int, int, int, bytes]

ENDINGS = (("four_way", 40), ("three_way", 12), ("server_first", 14), ("half_close", 4),
           ("simultaneous", 2), ("rst_client", 8), ("rst_server", 4), ("never", 6))
OPENINGS = (("normal", 955), ("refused", 20), ("syn_only", 10), ("midstream", 15))
LOSS = 0.003      # a server segment lost beyond the capture point
REORDER = 0.003   # a pair of server segments captured in swapped order
CONN_RATE = 400.0  # new connections per second


def _pick(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in table], [w for _, w in table])[0]


def _pareto(rng: random.Random, alpha: float, low: float, high: float) -> float:
    return min(high, low * rng.paretovariate(alpha))


class _Side:
    """One end's sequence number and option habits."""

    __slots__ = ("seq", "ts_base", "peer_ts", "use_ts")

    def __init__(self, rng: random.Random, use_ts: bool) -> None:
        self.seq = rng.getrandbits(32)
        self.ts_base = rng.getrandbits(31)
        self.peer_ts = 0
        self.use_ts = use_ts

    def opts(self, t: float, sack: list[tuple[int, int]] | None = None) -> bytes:
        """NOP NOP TS (when timestamps were agreed), then NOP NOP SACK blocks."""
        out = b""
        if self.use_ts:
            out = struct.pack("!BBBBII", 1, 1, 8, 10, (self.ts_base + int(t * 1000)) & 0xFFFFFFFF,
                              self.peer_ts)
        if sack:
            out += struct.pack("!BBBB", 1, 1, 5, 2 + 8 * len(sack))
            out += b"".join(struct.pack("!II", a & 0xFFFFFFFF, b & 0xFFFFFFFF) for a, b in sack)
        return out


def _syn_opts(side: _Side, t: float, wscale: int) -> bytes:
    """MSS, SACK-permitted, timestamps, window scale as Linux orders them (40-byte header),
    or without timestamps (32 bytes)."""
    if side.use_ts:
        return struct.pack("!BBHBBBBIIBBBB", 2, 4, 1460, 4, 2, 8, 10,
                           (side.ts_base + int(t * 1000)) & 0xFFFFFFFF, side.peer_ts, 1, 3, 3, wscale)
    return struct.pack("!BBHBBBBBBBB", 2, 4, 1460, 1, 1, 4, 2, 1, 3, 3, wscale)


class _Conn:
    """One connection's packets, made as it goes: a generator of Pkt in time order."""

    def __init__(self, rng: random.Random, t0: float) -> None:
        self.rng = rng
        self.t = t0
        use_ts = rng.random() >= 0.2
        self.c = _Side(rng, use_ts)
        self.s = _Side(rng, use_ts)
        self.rtt = _pareto(rng, 1.5, 0.004, 0.4)
        self.mss = 1448 if use_ts else 1460
        self.opening = _pick(rng, OPENINGS)
        self.ending = _pick(rng, ENDINGS)
        self.requests = int(_pareto(rng, 1.3, 1, 400))
        self.cwnd = 10

    # -- packet makers -------------------------------------------------------------------
    def _c(self, flags: int, length: int = 0, sack: list[tuple[int, int]] | None = None,
           opts: bytes | None = None) -> Pkt:
        c, s = self.c, self.s
        if c.use_ts:
            s.peer_ts = (c.ts_base + int(self.t * 1000)) & 0xFFFFFFFF
        o = c.opts(self.t, sack) if opts is None else opts
        p = (self.t, True, flags, c.seq, s.seq if flags & A else 0, length, o)
        c.seq += length + (1 if flags & (S | F) else 0)
        return p

    def _s(self, flags: int, length: int = 0, seq: int | None = None,
           opts: bytes | None = None) -> Pkt:
        c, s = self.c, self.s
        if s.use_ts:
            c.peer_ts = (s.ts_base + int(self.t * 1000)) & 0xFFFFFFFF
        o = s.opts(self.t) if opts is None else opts
        p = (self.t, False, flags, s.seq if seq is None else seq, c.seq, length, o)
        if seq is None:
            s.seq += length + (1 if flags & (S | F) else 0)
        return p

    def _wait(self, dt: float) -> None:
        self.t += dt

    # -- the conversation ----------------------------------------------------------------
    def packets(self) -> Iterator[Pkt]:
        rng = self.rng
        if self.opening == "midstream":
            self.c.seq += rng.randint(1, 1 << 20)
            self.s.seq += rng.randint(1, 1 << 24)
        else:
            yield self._c(S, opts=_syn_opts(self.c, self.t, 7))
            if self.opening == "syn_only":       # nobody answers: SYN retried, then given up
                for backoff in (1.0, 2.0):
                    self._wait(backoff)
                    self.c.seq -= 1
                    yield self._c(S, opts=_syn_opts(self.c, self.t, 7))
                return
            self._wait(0.00005)
            if self.opening == "refused":
                yield (self.t, False, R | A, 0, self.c.seq, 0, b"")
                return
            yield self._s(S | A, opts=_syn_opts(self.s, self.t, rng.choice((7, 9))))
            self._wait(self.rtt)
            yield self._c(A)
        piggy = False
        for n in range(self.requests):
            if n:
                self._wait(_pareto(rng, 1.1, 2.0, 300.0))
            yield self._c(P | A, rng.randint(60, 900))
            self._wait(0.0002 + rng.random() * 0.002)
            size = int(_pareto(rng, 1.1, 3000, 5e7)) if rng.random() < 0.8 \
                else rng.randint(100, 1200)
            piggy = yield from self._response(size)
            if piggy and rng.random() < 0.5:   # the delayed ACK rides on the next request
                continue
            if piggy:
                self._wait(0.04)
                yield self._c(A)
        yield from self._ending()

    def _response(self, size: int) -> Iterator[Pkt]:
        """The server's response in flights of cwnd segments, the client's delayed ACKs;
        True if the last segment is still unacknowledged (odd count, no timer yet)."""
        rng, mss = self.rng, self.mss
        unacked = 0
        while size > 0:
            flight: list[tuple[int, int]] = []    # (seq, length)
            for _ in range(self.cwnd):
                if size <= 0:
                    break
                length = min(mss, size)
                size -= length
                flight.append((self.s.seq, length))
                self.s.seq += length
            self.s.seq = flight[0][0]
            lost = -1
            i = 0
            while i < len(flight):
                seq, length = flight[i]
                if i + 1 < len(flight) and rng.random() < REORDER:   # the next one first
                    nseq, nlen = flight[i + 1]
                    yield self._s(P | A, nlen, seq=nseq)
                    self._wait(0.00002)
                    yield self._s(P | A, length, seq=seq)
                    i += 2
                else:
                    yield self._s(P | A if size <= 0 and i == len(flight) - 1 else A, length, seq=seq)
                    if lost < 0 and rng.random() < LOSS:
                        lost = i
                    i += 1
                self._wait(0.00012)
            self.s.seq = flight[-1][0] + flight[-1][1]
            self._wait(self.rtt)
            if lost >= 0:
                yield from self._recover(flight, lost)
                unacked = 0
            else:
                for k in range(len(flight)):      # ACK every second segment as they arrive
                    unacked += 1
                    if unacked == 2:
                        yield self._ack_upto(flight[k][0] + flight[k][1])
                        unacked = 0
                        self._wait(0.00012)
            self.cwnd = min(self.cwnd * 2, 128)
        return unacked > 0

    def _ack_upto(self, upto: int, sack: list[tuple[int, int]] | None = None) -> Pkt:
        saved = self.s.seq
        self.s.seq = upto
        p = self._c(A, sack=sack)
        self.s.seq = saved
        return p

    def _recover(self, flight: list[tuple[int, int]], lost: int) -> Iterator[Pkt]:
        """The client ACKs up to the hole, then duplicate ACKs with a SACK block; three of
        them bring a fast retransmit, fewer (a tail loss) a 200 ms timeout."""
        hole, hole_len = flight[lost]
        if lost:
            yield self._ack_upto(hole)
        dups = len(flight) - lost - 1
        for k in range(min(dups, 4)):
            self._wait(0.00012)
            right = flight[lost + 1 + k][0] + flight[lost + 1 + k][1]
            yield self._ack_upto(hole, sack=[(hole + hole_len, right)])
        self._wait(0.00005 if dups >= 3 else 0.2)
        yield self._s(A, hole_len, seq=hole)
        self._wait(self.rtt)
        yield self._ack_upto(self.s.seq)

    def _ending(self) -> Iterator[Pkt]:
        kind, rng = self.ending, self.rng
        if kind == "never":
            return
        self._wait(_pareto(rng, 1.5, 0.001, 5.0))
        if kind == "rst_client":
            yield self._c(R | A)
        elif kind == "rst_server":
            yield self._s(R | A)
        elif kind == "simultaneous":
            yield self._c(F | A)
            self.c.seq -= 1
            yield self._s(F | A)
            self.c.seq += 1
            self._wait(self.rtt)
            yield self._c(A)
            yield self._s(A)
        elif kind == "server_first":
            yield self._s(F | A)
            self._wait(self.rtt)
            yield self._c(A)
            self._wait(0.001)
            yield self._c(F | A)
            self._wait(0.00005)
            yield self._s(A)
        else:
            yield self._c(F | A)
            self._wait(0.00005)
            if kind == "three_way":
                yield self._s(F | A)
            else:
                yield self._s(A)
                if kind == "half_close":
                    self._wait(0.01)
                    yield self._s(P | A, rng.randint(200, 3000))
                    self._wait(self.rtt)
                    yield self._c(A)
                self._wait(0.0002)
                yield self._s(F | A)
            self._wait(self.rtt)
            yield self._c(A)


def _addresses(no: int, v6: bool) -> tuple[bytes, bytes, int, int]:
    if v6:
        client = socket.inet_pton(socket.AF_INET6, f"2001:db8:{no % 4000:x}::{no % 65000 + 1:x}")
        return client, socket.inet_pton(socket.AF_INET6, "2001:db8:ffff::80"), \
            1024 + (no * 7) % 64000, 443
    return bytes((10, (no >> 16) & 0xFF, (no >> 8) & 0xFF, no & 0xFF or 1)), \
        bytes((192, 0, 2, 80)), 1024 + (no * 7) % 64000, 443 if no % 5 else 80


def realistic(n: int, seed: int) -> Iterator[tuple[float, bytes]]:
    """``n`` packets (time, frame) of the realistic mix."""
    rng = random.Random(seed)
    heap: list[tuple[float, int, Pkt, Iterator[Pkt], tuple[bool, bytes, bytes, int, int]]] = []
    t_next = 1_700_000_000.0
    no = 0

    def start(t0: float) -> None:
        nonlocal no
        no += 1
        v6 = rng.random() < 0.1
        conn = _Conn(random.Random(rng.getrandbits(64)), t0)
        it = conn.packets()
        first = next(it, None)
        if first is not None:
            heapq.heappush(heap, (first[0], no, first, it, (v6, *_addresses(no, v6))))

    for _ in range(2000):   # connections already open when the capture starts
        c = _Conn(random.Random(rng.getrandbits(64)), t_next + rng.random() * 2)
        c.opening = "midstream"
        no += 1
        v6 = rng.random() < 0.1
        it = c.packets()
        first = next(it, None)
        if first is not None:
            heapq.heappush(heap, (first[0], no, first, it, (v6, *_addresses(no, v6))))
    made = 0
    while made < n:
        if not heap or t_next < heap[0][0]:
            start(t_next)
            t_next += rng.expovariate(CONN_RATE)
            continue
        t, key, pkt, it, addr = heap[0]
        yield t, frame(addr, pkt)
        made += 1
        nxt = next(it, None)
        if nxt is None:
            heapq.heappop(heap)
        else:
            heapq.heapreplace(heap, (max(nxt[0], t), key, nxt, it, addr))


def frame(addr: tuple[bool, bytes, bytes, int, int], pkt: Pkt, window: int = 0) -> bytes:
    """An Ethernet frame of one packet (``window``: that field always, else Linux's
    64240 on a SYN, 502 after)."""
    v6, caddr, saddr, cport, sport = addr
    _, from_client, flags, seq, ack, length, opts = pkt
    src, dst, sp, dp = (caddr, saddr, cport, sport) if from_client else (saddr, caddr, sport, cport)
    window = window or (64240 if flags & S else 502)
    th = struct.pack("!HHIIHHHH", sp, dp, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                     ((20 + len(opts)) // 4) << 12 | flags, window, 0, 0) + opts + bytes(length)
    if v6:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(th), 6, 64, src, dst)
        return b"\x02" * 6 + b"\x04" * 6 + b"\x86\xdd" + ip + th
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(th), 0, 0x4000, 64, 6, 0, src, dst)
    return b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00" + ip + th


# -- the simple mix (the first benchmark's) ------------------------------------------------
SIMPLE_CLOSES = ("client_first", "three_way", "server_first", "simultaneous", "rst_abort",
                 "refused", "half_close")


def _simple_conversation(rng: random.Random, kind: str,
                         exchanges: int) -> list[tuple[bool, int, int, int, int]]:
    """Packets of one connection as (from_client, flags, seq, ack, length)."""
    c, s = rng.getrandbits(32), rng.getrandbits(32)
    out: list[tuple[bool, int, int, int, int]] = [(True, S, c, 0, 0)]
    if kind == "refused":
        return out + [(False, R | A, 0, c + 1, 0)]
    c += 1
    out += [(False, S | A, s, c, 0), (True, A, c, s + 1, 0)]
    s += 1
    for _ in range(exchanges):
        req, resp = rng.randint(20, 400), rng.randint(100, 1400)
        out.append((True, P | A, c, s, req))
        c += req
        out.append((False, P | A, s, c, resp))
        s += resp
        out.append((True, A, c, s, 0))
        if rng.random() < 0.02:               # a retransmission of the response
            out.append((False, P | A, s - resp, c, resp))
        if rng.random() < 0.02 and len(out) > 6:  # two segments swapped: out of order
            out[-2], out[-3] = out[-3], out[-2]
    if kind == "client_first":
        out += [(True, F | A, c, s, 0), (False, A, s, c + 1, 0), (False, F | A, s, c + 1, 0),
                (True, A, c + 1, s + 1, 0)]
    elif kind == "three_way":
        out += [(True, F | A, c, s, 0), (False, F | A, s, c + 1, 0), (True, A, c + 1, s + 1, 0)]
    elif kind == "server_first":
        out += [(False, F | A, s, c, 0), (True, A, c, s + 1, 0), (True, F | A, c, s + 1, 0),
                (False, A, s + 1, c + 1, 0)]
    elif kind == "simultaneous":
        out += [(True, F | A, c, s, 0), (False, F | A, s, c, 0), (True, A, c + 1, s + 1, 0),
                (False, A, s + 1, c + 1, 0)]
    elif kind == "rst_abort":
        out += [(True, R | A, c, s, 0)]
    elif kind == "half_close":
        out += [(True, F | A, c, s, 0), (False, A, s, c + 1, 0), (False, P | A, s, c + 1, 500),
                (True, A, c + 1, s + 500, 0), (False, F | A, s + 500, c + 1, 0),
                (True, A, c + 1, s + 501, 0)]
    return out


_SIMPLE_SYN_OPTS = b"\x02\x04\x05\xb4\x01\x03\x03\x07"


def simple(n: int, seed: int, concurrent: int = 2000) -> Iterator[tuple[float, bytes]]:
    """``n`` packets of the simple mix: interleaved connections, 10 µs apart."""
    rng = random.Random(seed)
    active: list[list] = []   # type: ignore[type-arg]
    made = conn_no = 0
    t = 1_700_000_000.0
    while made < n:
        while len(active) < concurrent:
            conn_no += 1
            v6 = conn_no % 3 == 0
            if v6:
                caddr = socket.inet_pton(socket.AF_INET6, f"fd00::{conn_no % 250 + 1:x}")
                saddr = socket.inet_pton(socket.AF_INET6, "fd00::1:1")
            else:
                caddr = bytes((10, 1, conn_no % 250, 1 + conn_no % 200))
                saddr = bytes((10, 2, 0, 1))
            kind = SIMPLE_CLOSES[conn_no % len(SIMPLE_CLOSES)]
            pkts = _simple_conversation(rng, kind, rng.randint(5, 60))
            active.append([(v6, caddr, saddr, 1024 + conn_no % 60000, 80 + conn_no % 7), pkts, 0])
        i = rng.randrange(len(active))
        conn = active[i]
        from_client, flags, seq, ack, length = conn[1][conn[2]]
        t += 0.00001
        yield t, frame(conn[0], (t, from_client, flags, seq, ack, length,
                                 _SIMPLE_SYN_OPTS if flags & S else b""), 512)
        made += 1
        conn[2] += 1
        if conn[2] == len(conn[1]):
            active[i] = active[-1]
            active.pop()


MIXES = {"realistic": realistic, "simple": simple}


def write_pcap(path: Path, mix: str, n: int, seed: int, concurrent: int = 2000) -> None:
    """A pcap (microseconds, Ethernet) of ``n`` packets of ``mix`` (``concurrent``: the
    simple mix's connections open at once)."""
    packets = simple(n, seed, concurrent) if mix == "simple" else MIXES[mix](n, seed)
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        batch = []
        for t, data in packets:
            sec = int(t)
            usec = int((t - sec) * 1e6)
            batch.append(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)
            if len(batch) >= 10000:
                f.write(b"".join(batch))
                batch = []
        f.write(b"".join(batch))
