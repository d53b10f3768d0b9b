"""Zeek's view of a connection: conn_state and history, as Zeek's TCP analyzer derives them.

Pure, fed one annotation at a time in capture order. Each side is a Zeek endpoint
(INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET) moved by the
rules of Zeek's TCP analyzer (UpdateStateMachine in TCP.cc); conn_state is then Zeek's
``Conn::conn_state`` function of the two, and history follows update_history: upper case
for the originator; S h A D F R I Q recorded once per direction except that s h f r
repeat when their sequence number differs from the last one of that kind; T W G (and
C) logarithmically, at the 1st, 10th, 100th... occurrence; ``^`` first when the
originator is not the sender of the first packet (Zeek flips such connections).

The originator is the tracker's client. Checksums are never checked, so C/c never occur;
gaps (G/g) are content the peer acknowledged that was never captured, counted when the
acknowledgement arrives on a segment without FIN or RST, as Zeek does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..core.annotation import Annotation
from ..core.segment import ACK, FIN, RST, SYN
from ..core.seqspace import MASK, seq_delta as _delta
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = (
    "INACTIVE", "SYN_SENT", "SYN_ACK_SENT", "PARTIAL", "ESTABLISHED", "CLOSED", "RESET")
_RSTOS0 = re.compile(r"\^?S[^HAFGIQ]*R.*")


class ZeekEndpoint:
    """One side, as Zeek's TCP_Endpoint keeps it (the parts conn.log needs)."""

    __slots__ = ("orig", "state", "prev_state", "start", "last", "ack", "fin_cnt",
                 "last_syn", "last_fin", "last_rst", "counters", "pkts", "did_close",
                 "seen_upto", "blocks")

    def __init__(self, orig: bool) -> None:
        self.orig = orig
        self.state = self.prev_state = INACTIVE
        self.start = self.last = self.ack = 0
        self.fin_cnt = 0
        self.last_syn = self.last_fin = self.last_rst = 0
        self.counters: dict[str, list[int]] = {}   # letter → [count, threshold]
        self.pkts = 0
        self.did_close = False
        self.seen_upto = 0      # contiguous payload captured up to (absolute seq)
        self.blocks: list[tuple[int, int]] = []   # payload captured beyond a hole

    def captured(self, seq: int, end: int) -> None:
        """Payload [seq, end) was captured: extend the contiguous part, or keep the block."""
        if _delta(seq, self.seen_upto) > 0:
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
        self.blocks = [b for b in self.blocks if _delta(b[1], ack) > 0]
        self.seen_upto = ack
        return missing

    def set_state(self, new: str) -> None:
        if new != self.state:
            self.prev_state, self.state = self.state, new

    def size(self) -> int:
        """Payload bytes from sequence numbers, as TCP_Endpoint::Size()."""
        end = self.last if _delta(self.last, self.ack) > 0 else self.ack
        size = (end - self.start) & MASK
        if size:
            size -= 1           # the SYN octet
        if self.fin_cnt and size:
            size -= 1           # the FIN octet
        return size


@dataclass
class ZeekConn:
    """One connection's Zeek record, and which frame produced each history letter."""
    orig: ZeekEndpoint = field(default_factory=lambda: ZeekEndpoint(True))
    resp: ZeekEndpoint = field(default_factory=lambda: ZeekEndpoint(False))
    history: list[tuple[str, int]] = field(default_factory=list)   # (letter, frame)
    seen: set[str] = field(default_factory=set)
    first_ts: float = 0.0
    last_time: float = 0.0
    missed_bytes: int = 0

    @property
    def history_string(self) -> str:
        return "".join(letter for letter, _ in self.history)

    def _add(self, ep: ZeekEndpoint, code: str, frame: int) -> None:
        self.history.append((code if ep.orig else code.lower(), frame))

    def _check(self, ep: ZeekEndpoint, code: str, frame: int, key: str = "") -> bool:
        """Record ``code`` the first time its kind (``key``, default the letter) is
        seen from this side; True if it had been seen before."""
        key = (key or code) + ("<" if ep.orig else ">")
        if key in self.seen:
            return True
        self.seen.add(key)
        self._add(ep, code, frame)
        return False

    def _scaled(self, ep: ZeekEndpoint, code: str, frame: int) -> None:
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
                return "RSTOS0" if _RSTOS0.fullmatch(self.history_string) else "OTH"
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

    def feed(self, a: Annotation) -> None:
        """One segment of this connection, in capture order."""
        seg = a.seg
        ep, peer = (self.orig, self.resp) if a.from_client else (self.resp, self.orig)
        flags, seq, ack, plen, frame = seg.flags, seg.seq, seg.ack, seg.payload, seg.frame
        if not self.history:
            self.first_ts = seg.ts
            if not a.from_client:
                self.history.append(("^", frame))
        ep.pkts += 1
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
        self._state_machine(ep, peer, flags, a.from_client, plen)
        if flags & ACK and not flags & (FIN | RST) and peer.state != INACTIVE \
                and _delta(ack, peer.seen_upto) > 0 and peer.fin_cnt == 0:
            missing = peer.gap(ack)
            if missing > 0:
                self.missed_bytes += missing
                self._scaled(peer, "G", frame)

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
                       is_orig: bool, plen: int) -> None:
        st = ep.state
        close = False
        if st == INACTIVE:
            if flags & SYN:
                if is_orig:
                    ep.set_state(SYN_ACK_SENT if flags & ACK else SYN_SENT)
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
                close = not ep.did_close
        if close:
            ep.did_close = True


class ConnLog:
    """Zeek records for every connection of a run, fed annotations in capture order."""

    def __init__(self) -> None:
        self.conns: dict[int, ZeekConn] = {}

    def feed(self, a: Annotation) -> None:
        conn = self.conns.get(a.conn)
        if conn is None:
            conn = self.conns[a.conn] = ZeekConn()
        conn.feed(a)
