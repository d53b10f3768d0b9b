"""Zeek's view of a connection: conn_state and history, as Zeek's TCP analyzer derives them.

Pure, fed one annotation at a time in capture order. One tracker connection can be several
Zeek connections (rows of conn.log): ``ConnLog`` ends a row where Zeek would remove the
connection (its timers, or a SYN that Zeek takes for port reuse) and starts the next one
with the next packet; docs/zeek.md says which rules and why. Each side is a Zeek endpoint
(INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET) moved by the
rules of Zeek's TCP analyzer (UpdateStateMachine in TCP.cc); conn_state is then Zeek's
``Conn::conn_state`` function of the two, and history follows update_history: upper case
for the originator; S h A D F R I Q recorded once per direction except that s h f r
repeat when their sequence number differs from the last one of that kind; T W G (and
C) logarithmically, at the 1st, 10th, 100th... occurrence; ``^`` first when the
originator is not the sender of the first packet (Zeek flips such connections).

The originator is the tracker's client, except in a later row that opens with the server's
bare SYN (Zeek takes its sender as originator). Checksums are never checked, so C/c never
occur; gaps (G/g) are content the peer acknowledged that was never captured (up to its FIN),
counted as Zeek's reassembler does: only while both sides are established or closing cleanly.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from ..core.annotation import Annotation
from ..core.segment import ACK, FIN, RST, SYN
from ..core.seqspace import MASK, seq_delta as _delta
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")
# Zeek's defaults (init-bare.zeek), in seconds.
TCP_ATTEMPT_DELAY = 5.0         # an unanswered SYN ends the connection attempt
TCP_CLOSE_DELAY = 5.0           # a closed (or reset) connection is removed
TCP_RESET_DELAY = 5.0           # an RST after a FIN
TCP_PARTIAL_CLOSE_DELAY = 3.0   # one side closed, the other never seen closing
TCP_INACTIVITY_TIMEOUT = 300.0
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


BASE32: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def uid(text: str) -> str:
    """A Zeek-style uid made from ``text``: "C" and the first 17 characters of the base32
    of its SHA-1 (the first 85 bits, five at a time; ``base64.b32encode``, which encodes
    the whole digest in interpreted code, took 7 % of the time of ``--format zeek``)."""
    digest = hashlib.sha1(text.encode()).digest()
    chars = ["C"]
    for n in (int.from_bytes(digest[:5], "big"), int.from_bytes(digest[5:10], "big")):
        for shift in range(35, -5, -5):
            chars.append(BASE32[(n >> shift) & 31])
    chars.append(BASE32[digest[10] >> 3])
    return "".join(chars)


# Shared by the endpoints that have none yet (most): each gets its own at its first.
NO_COUNTERS: dict[str, list[int]] = {}
NO_BLOCKS: list[tuple[int, int]] = []


class ZeekEndpoint:
    """One side, as Zeek's TCP_Endpoint keeps it (the parts conn.log needs)."""

    __slots__ = ("orig", "state", "prev_state", "start", "last", "ack", "fin_cnt",
                 "last_syn", "last_fin", "last_rst", "counters", "pkts", "did_close",
                 "seen_upto", "blocks", "fin_at")

    def __init__(self, orig: bool) -> None:
        self.orig = orig
        self.state = self.prev_state = INACTIVE
        self.start = self.last = self.ack = 0
        self.fin_cnt = 0
        self.last_syn = self.last_fin = self.last_rst = 0
        self.counters = NO_COUNTERS   # letter → [count, threshold], once one is counted
        self.pkts = 0
        self.did_close = False
        self.seen_upto = 0      # contiguous payload captured up to (absolute seq)
        self.blocks = NO_BLOCKS       # payload captured beyond a hole, once there is one
        self.fin_at = 0         # the sequence number of the last FIN's octet

    def captured(self, seq: int, end: int) -> None:
        """Payload [seq, end) was captured: extend the contiguous part, or keep the block."""
        if _delta(seq, self.seen_upto) > 0:
            if self.blocks is NO_BLOCKS:
                self.blocks = []
            if len(self.blocks) < 64:
                self.blocks.append((seq, end))
            return
        if _delta(end, self.seen_upto) > 0:
            self.seen_upto = end
        moved = True
        while moved:        # blocks that now touch the contiguous part join it
            moved = False
            for b in self.blocks:
                if _delta(b[0], self.seen_upto) <= 0:
                    self.blocks.remove(b)
                    if _delta(b[1], self.seen_upto) > 0:
                        self.seen_upto = b[1]
                    moved = True
                    break

    def gap(self, ack: int) -> int:
        """Bytes below ``ack`` never captured; the contiguous part then moves to ``ack``."""
        missing = _delta(ack, self.seen_upto)
        for b0, b1 in self.blocks:
            lo = b0 if _delta(b0, self.seen_upto) > 0 else self.seen_upto
            hi = b1 if _delta(ack, b1) > 0 else ack
            if _delta(hi, lo) > 0:
                missing -= _delta(hi, lo)
        if self.blocks:
            self.blocks = [b for b in self.blocks if _delta(b[1], ack) > 0]
        self.seen_upto = ack
        return missing

    def set_state(self, new: str) -> None:
        if new != self.state:
            self.prev_state, self.state = self.state, new

    def clean(self) -> bool:
        """Established, or closed from established: where Zeek's reassembler logs gaps."""
        return self.state == ESTABLISHED or (self.state == CLOSED
                                             and self.prev_state == ESTABLISHED)

    def size(self) -> int:
        """Payload bytes from sequence numbers, as TCP_Endpoint::Size()."""
        end = self.last if _delta(self.last, self.ack) > 0 else self.ack
        size = (end - self.start) & MASK
        if size:
            size -= 1           # the SYN octet
        if self.fin_cnt and size:
            size -= 1           # the FIN octet
        return size


# The kinds of segment whose first one from each side adds a history letter: a bit
# each, the responder's 8 higher (a set of strings cost half a kilobyte a connection).
_SEEN_BITS = {"I": 0, "Q": 1, "syn": 2, "F": 3, "R": 4, "D": 5, "A": 6}


@dataclass
class ZeekConn:
    """One connection's Zeek record, and which frame produced each history letter
    (``letters[i]`` came from ``frames[i]``: a string and an array of machine ints, not
    a tuple or an int object a letter)."""
    orig: ZeekEndpoint = field(default_factory=lambda: ZeekEndpoint(True))
    resp: ZeekEndpoint = field(default_factory=lambda: ZeekEndpoint(False))
    orig_is_client: bool = True   # False: the originator is the tracker's server
    letters: str = ""
    frames: array[int] = field(default_factory=lambda: array("q"))
    seen: int = 0                 # bits of _SEEN_BITS: the kinds recorded, per side
    first_ts: float = 0.0
    last_time: float = 0.0
    missed_bytes: int = 0
    seen_at: float = 0.0          # the last packet's time (Zeek's Conn::LastTime)
    # Zeek's timers that remove the connection: when each is due (0: none).
    attempt_at: float = 0.0
    partial_close_at: float = 0.0
    delete_at: float = 0.0

    @property
    def history(self) -> list[tuple[str, int]]:
        """Each history letter with the frame that produced it."""
        return list(zip(self.letters, self.frames))

    def _add(self, ep: ZeekEndpoint, code: str, frame: int) -> None:
        self.letters += code if ep.orig else code.lower()
        self.frames.append(frame)

    def _check(self, ep: ZeekEndpoint, code: str, frame: int, key: str = "") -> bool:
        """Record ``code`` the first time its kind (``key``, default the letter) is
        seen from this side; True if it had been seen before."""
        bit = 1 << (_SEEN_BITS[key or code] + (0 if ep.orig else 8))
        if self.seen & bit:
            return True
        self.seen |= bit
        self._add(ep, code, frame)
        return False

    def _scaled(self, ep: ZeekEndpoint, code: str, frame: int) -> None:
        if ep.counters is NO_COUNTERS:
            ep.counters = {}
        count = ep.counters.setdefault(code, [0, 1])
        count[0] += 1
        if count[0] == count[1]:
            self._add(ep, code, frame)
            count[1] *= 10

    def conn_state(self) -> str:
        """Zeek's Conn::conn_state for TCP."""
        os_, rs = self.orig.state, self.resp.state
        o_inactive = os_ in (INACTIVE, PARTIAL)
        r_inactive = rs in (INACTIVE, PARTIAL)
        if rs == RESET:
            if os_ in (SYN_SENT, SYN_ACK_SENT) or (
                    os_ == RESET and self.orig.size() == 0 and self.resp.size() == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == RESET:
            if r_inactive:
                return "RSTOS0" if _RSTOS0.fullmatch(self.letters) else "OTH"
            return "RSTO"
        if rs == CLOSED and os_ == CLOSED:
            return "SF"
        if os_ == CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os_ == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

    def row(self) -> ZeekRow:
        """This connection's conn.log fields as they stand."""
        return ZeekRow(self.first_ts, self.last_time - self.first_ts,
                       (self.orig.pkts, self.resp.pkts), (self.orig.size(), self.resp.size()),
                       self.conn_state(), self.letters, self.missed_bytes,
                       not self.orig_is_client)

    def over(self, t: float) -> bool:
        """Whether Zeek has removed this connection by time ``t`` (a packet of it is due
        then): its timers are checked on the state its last packet left."""
        o, r = self.orig, self.resp
        if t - self.seen_at >= TCP_INACTIVITY_TIMEOUT or 0 < self.delete_at <= t:
            return True
        if 0 < self.attempt_at <= t:          # AttemptTimer
            self.attempt_at = 0.0
            if o.state in (SYN_SENT, SYN_ACK_SENT) and r.state == INACTIVE:
                return True
        if 0 < self.partial_close_at <= t:    # PartialCloseTimer
            self.partial_close_at = 0.0
            if INACTIVE not in (o.state, r.state) and RESET not in (o.state, r.state) \
                    and not (o.did_close and r.did_close):
                return True
        return False

    def reused_by(self, flags: int, seq: int) -> bool:
        """Zeek's IsReuse: a SYN that starts a new connection on the same 4-tuple."""
        if not flags & SYN:
            return False
        first = self.orig
        if flags & ACK:
            if self.orig.state != INACTIVE:
                return False
            first = self.resp     # a half connection: the SYN+ACK may restart it
        if self.orig.did_close or self.resp.did_close:
            return True
        return seq != first.start and not (
            not flags & ACK and first.state == SYN_ACK_SENT and self.resp.state == INACTIVE
            and seq == self.resp.start)

    def feed(self, a: Annotation) -> None:
        """One segment of this connection, in capture order."""
        seg = a.seg
        is_orig = a.from_client == self.orig_is_client
        ep, peer = (self.orig, self.resp) if is_orig else (self.resp, self.orig)
        flags, seq, ack, plen, frame = seg.flags, seg.seq, seg.ack, seg.payload, seg.frame
        if not self.letters:
            self.first_ts = seg.ts
            if not is_orig:
                self.letters = "^"
                self.frames.append(frame)
        ep.pkts += 1
        self.seen_at = seg.ts
        seg_len = plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        if flags & RST:
            seg_len -= plen
        end = (seq + seg_len) & MASK
        self._init_endpoint(ep, flags, seq, end)
        rel_seq = _delta(seq, ep.start)
        self._history(ep, flags, rel_seq, plen, frame)
        if seg.window == 0 and not flags & RST and peer.state != CLOSED and ep.state != RESET:
            self._scaled(ep, "W", frame)
        if not (self.orig.did_close and self.resp.did_close):
            self.last_time = seg.ts
        if flags & FIN:
            ep.fin_cnt += 1
            ep.fin_at = (end - 1) & MASK
        if flags & ACK:
            if peer.state == INACTIVE:
                peer.start = peer.ack = peer.last = (ack - 1) & MASK
                peer.seen_upto = ack
            elif not flags & RST and _delta(ack, peer.ack) > 0:
                peer.ack = ack
        self._update_last_seq(ep, flags, end, plen, frame)
        if plen and not flags & RST:
            data = (seq + 1) & MASK if flags & SYN else seq   # data on a SYN follows it
            ep.captured(data, (data + plen) & MASK)
        if self._state_machine(ep, peer, flags, is_orig, plen, seg.ts):
            self._closed(ep, peer, seg.ts)
        if flags & ACK and peer.state != INACTIVE:
            self._acked(ep, peer, ack, frame)

    def _acked(self, ep: ZeekEndpoint, peer: ZeekEndpoint, ack: int, frame: int) -> None:
        """Zeek's AckReceived: what the peer sent below ``ack`` (up to its FIN) and was
        never captured is a gap, logged while both sides are established or closing."""
        if peer.fin_cnt and _delta(ack, peer.fin_at) > 0:
            ack = peer.fin_at
        if _delta(ack, peer.seen_upto) > 0:
            missing = peer.gap(ack)
            if missing > 0 and peer.clean() and ep.clean():
                self.missed_bytes += missing
                self._scaled(peer, "G", frame)

    def _closed(self, ep: ZeekEndpoint, peer: ZeekEndpoint, t: float) -> None:
        """Zeek's ConnectionClosed: which timer will remove the connection."""
        if ep.did_close:
            return
        ep.did_close = True
        if ep.state == RESET or peer.did_close or peer.state == INACTIVE:
            self.attempt_at = self.partial_close_at = 0.0   # CancelTimers
            self.delete_at = t + TCP_CLOSE_DELAY
        elif ep.prev_state == INACTIVE:
            self.partial_close_at = t + TCP_PARTIAL_CLOSE_DELAY

    @staticmethod
    def _init_endpoint(ep: ZeekEndpoint, flags: int, seq: int, end: int) -> None:
        """Zeek's init_endpoint: where this side's sequence space starts."""
        if ep.state == INACTIVE:
            ep.start = ep.ack = seq if flags & SYN else (seq - 1) & MASK
            ep.last = end if flags & SYN else seq
            ep.seen_upto = (ep.start + 1) & MASK
        elif flags & SYN and ep.state in (SYN_SENT, SYN_ACK_SENT, ESTABLISHED, PARTIAL) \
                and seq != ep.start:
            ep.start = ep.ack = seq
            ep.last = end
        elif flags & SYN and ep.state == RESET and ep.prev_state == INACTIVE:
            ep.start = ep.ack = seq
            ep.last = end

    def _update_last_seq(self, ep: ZeekEndpoint, flags: int, end: int, plen: int,
                         frame: int) -> None:
        """Zeek's update_last_seq; data that does not advance it is a retransmission (T)."""
        delta_last = _delta(end, ep.last)
        if flags & (SYN | RST) and abs(delta_last) > 1048576:
            return
        if flags & FIN and ep.last == (ep.start + 1) & MASK:
            ep.last = end
        elif ep.state == RESET:
            return
        elif delta_last > 0:
            ep.last = end
        elif plen > 0:
            self._scaled(ep, "T", frame)

    def _history(self, ep: ZeekEndpoint, flags: int, rel_seq: int, plen: int,
                 frame: int) -> None:
        bits = bool(flags & SYN) + bool(flags & FIN) + bool(flags & RST)
        if bits > 1:
            self._check(ep, "I" if flags & FIN and flags & RST else "Q", frame)
        elif bits == 1:
            if flags & SYN:
                code = "H" if flags & ACK else "S"
                # One "SYN seen" bit per side serves both S and H, as in Zeek.
                if self._check(ep, code, frame, key="syn") and rel_seq != ep.last_syn:
                    self._add(ep, code, frame)
                ep.last_syn = rel_seq
            if flags & FIN:
                if self._check(ep, "F", frame) and rel_seq + plen != ep.last_fin:
                    self._add(ep, "F", frame)
                ep.last_fin = rel_seq + plen
            if flags & RST:
                if self._check(ep, "R", frame) and rel_seq != ep.last_rst:
                    self._add(ep, "R", frame)
                ep.last_rst = rel_seq
        elif plen:
            self._check(ep, "D", frame)
        elif flags & ACK:
            self._check(ep, "A", frame)

    @staticmethod
    def _fin_or_rst(ep: ZeekEndpoint, flags: int) -> bool:
        """FIN closes, RST resets (RST wins); True if either ended this side."""
        if flags & FIN:
            ep.set_state(CLOSED)
        if flags & RST:
            ep.set_state(RESET)
        return bool(flags & (FIN | RST))

    def _state_machine(self, ep: ZeekEndpoint, peer: ZeekEndpoint, flags: int,
                       is_orig: bool, plen: int, t: float) -> bool:
        """Zeek's UpdateStateMachine; True if the segment closes its sender's side."""
        st = ep.state
        close = False
        if st == INACTIVE:
            if flags & SYN:
                if is_orig:
                    ep.set_state(SYN_ACK_SENT if flags & ACK else SYN_SENT)
                    self.attempt_at = t + TCP_ATTEMPT_DELAY
                else:
                    if peer.state == SYN_SENT:
                        peer.set_state(ESTABLISHED)
                    ep.set_state(ESTABLISHED)
            close = self._fin_or_rst(ep, flags)
            # A responder's bare ACK of an initial SYN does not make a partial connection.
            ack_of_syn = not is_orig and plen == 0 and self.orig.state == SYN_SENT
            if ep.state == INACTIVE and not ack_of_syn:
                ep.set_state(ESTABLISHED if flags & ACK and peer.state == ESTABLISHED
                             else PARTIAL)
        elif st in (SYN_SENT, SYN_ACK_SENT):
            close = self._fin_or_rst(ep, flags)
        elif st in (ESTABLISHED, PARTIAL):
            if flags & SYN and st == PARTIAL and peer.state == INACTIVE and not flags & ACK:
                ep.set_state(SYN_SENT)
            if flags & FIN and not flags & RST:
                ep.set_state(CLOSED)
                if peer.state == RESET and peer.prev_state == CLOSED:
                    peer.set_state(CLOSED)
                close = True
            if flags & RST:
                ep.set_state(RESET)
                close = True
        elif st == CLOSED:
            if flags & RST and peer.state != CLOSED:
                ep.set_state(RESET)
                close = True
                reset_at = t + TCP_RESET_DELAY     # ResetTimer
                self.delete_at = min(self.delete_at or reset_at, reset_at)
        return close


class ZeekRow(NamedTuple):
    """One row of Zeek's conn.log (the fields rawinspect computes). A named tuple, not a
    frozen dataclass: ``replay --jobs`` pickles it, and a compiled frozen dataclass cannot
    be unpickled."""
    ts: float
    duration: float
    pkts: tuple[int, int]         # originator, responder
    bytes: tuple[int, int]
    conn_state: str
    history: str
    missed_bytes: int
    reversed: bool                # the originator is the tracker's server


class ConnLog:
    """Zeek records for every connection of a run, fed annotations in capture order.

    ``conns``: one record per tracker connection, fed all of its segments (the summary's
    conn_state and history). ``rows(conn)``: the connections Zeek itself would log for the
    same segments; a record fed a single Zeek connection serves as both.
    """

    def __init__(self) -> None:
        self.conns: dict[int, ZeekConn] = {}
        self.current: dict[int, ZeekConn] = {}      # the Zeek connection being fed
        self.ended: dict[int, list[ZeekRow]] = {}   # those Zeek removed before it

    def feed(self, a: Annotation) -> None:
        """The next annotation of the run."""
        whole = self.conns.get(a.conn)
        if whole is None:
            self.conns[a.conn] = self.current[a.conn] = whole = ZeekConn()
        else:
            cur = self.current[a.conn]
            if cur.over(a.seg.ts) or cur.reused_by(a.seg.flags, a.seg.seq):
                self.ended.setdefault(a.conn, []).append(cur.row())
                # Zeek flips a new connection by its ports unless it opens with a SYN.
                bare_syn = a.seg.flags & (SYN | ACK) == SYN
                self.current[a.conn] = cur = ZeekConn(orig_is_client=a.from_client or not bare_syn)
            if cur is not whole:
                cur.feed(a)
        whole.feed(a)

    def forget(self, conn: int) -> None:
        """Drop connection ``conn``'s records (it will be fed no more)."""
        del self.conns[conn], self.current[conn]
        self.ended.pop(conn, None)

    def rows(self, conn: int) -> list[ZeekRow]:
        """The conn.log rows Zeek would write for tracker connection ``conn``, in order."""
        return self.ended.get(conn, []) + [self.current[conn].row()]
