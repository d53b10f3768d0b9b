"""Wireshark's TCP sequence analysis, flag for flag (tcp.analysis.* in packet-tcp.c).

Pure and per direction: each annotation, in capture order, gets the flags Wireshark
would give its segment, under the same names without the ``tcp.analysis.`` prefix:
zero_window_probe, zero_window, lost_segment ("previous segment not captured"),
keep_alive, window_update, window_full, keep_alive_ack, zero_window_probe_ack,
duplicate_ack (with ``duplicate_ack_num=N``), ack_lost_segment ("ACKed unseen
segment"), fast_retransmission, out_of_order, spurious_retransmission and
retransmission, and reused_ports. The checks run in Wireshark's order, with its early
exits, so precedence is the same: a zero-window probe is nothing else; a keep-alive ACK
or probe ACK is not a duplicate ACK; a keep-alive is not a retransmission; a fast
retransmission or out-of-order segment is not a plain retransmission (Wireshark marks a
fast or spurious retransmission as a retransmission too, and so do we).
"""

from __future__ import annotations

from typing import Final

from ..core.annotation import NO_FLAGS, Annotation
from ..core.segment import ACK, FIN, RST, SYN, Segment, reverse_flow
from ..core.seqspace import MASK, seq_lt

FAST_RETRANSMISSION_WINDOW: Final = 0.020   # seconds after the last duplicate ACK
DEFAULT_OOO_THRESHOLD: Final = 0.003        # seconds, when the handshake RTT is unknown
KEEP_ALIVE: Final = 1               # what the peer's next segment needs to know
ZWP: Final = 2


class Flow:
    """One direction's bookkeeping, as Wireshark's tcp_analyze_seq_info."""

    __slots__ = ("nextseq", "nextseq_ts", "maxseqtobeacked", "lastack", "lastack_ts",
                 "window", "wscale", "dupacknum", "last_marks", "seen", "base")

    def __init__(self) -> None:
        self.nextseq = 0          # highest sequence number seen + length (0: none yet)
        self.nextseq_ts = 0.0
        self.maxseqtobeacked = 0
        self.lastack = 0
        self.lastack_ts = 0.0
        self.window = -1          # last window, scaled when the scale is known
        self.wscale = -1          # -1: unknown (SYN not seen); -2: peer did not scale
        self.dupacknum = 0
        self.last_marks = 0       # KEEP_ALIVE / ZWP bits of the last segment
        self.seen = False
        self.base = 0             # first sequence number (the one before, without SYN)


class HandshakeRtt:
    """The handshake RTT, as Wireshark's tcp.analysis.initial_rtt: from the latest SYN to
    the first acknowledgement without SYN after it, once the peer has been heard.

    A SYN sent again restarts it, so a SYN dropped by a full queue does not count as
    round-trip time. ``rtt`` is 0.0 until known. The one definition: Wireshark's view
    uses it for its out-of-order threshold, the connection summaries report it.
    """

    __slots__ = ("syn_ts", "rtt")

    def __init__(self) -> None:
        self.syn_ts = 0.0         # when the latest SYN was seen (0: not seen)
        self.rtt = 0.0

    def feed(self, flags: int, ts: float, peer_heard: bool) -> None:
        """Take one segment's flags and time; ``peer_heard``: the other side has sent."""
        if flags & SYN:
            if not flags & ACK:
                self.syn_ts = ts
        elif flags & ACK and self.syn_ts and not self.rtt and peer_heard:
            self.rtt = ts - self.syn_ts


class ConnAnalysis:
    """One connection's bookkeeping: both directions, the handshake RTT, its 4-tuple."""

    __slots__ = ("c", "s", "handshake", "key", "conn")

    def __init__(self, key: bytes, conn: int) -> None:
        self.c = Flow()
        self.s = Flow()
        self.handshake = HandshakeRtt()
        self.key = key            # the 4-tuple, the same in both directions
        self.conn = conn


class SeqAnalyzer:
    """Adds Wireshark's analysis flags to annotations, fed in frame order (``feed``).

    It keeps each connection's ``ConnAnalysis`` until told the tracker forgot it.
    """

    def __init__(self) -> None:
        self._conn_of_tuple: dict[bytes, int] = {}
        self._conns: dict[int, ConnAnalysis] = {}

    def feed(self, anns: list[Annotation]) -> None:
        """Add Wireshark's flags to each annotation's ``analysis``."""
        conns = self._conns
        for a in anns:
            state = conns.get(a.conn)
            if state is None:
                state = conns[a.conn] = self.start(a)
            self.analyze(a, state)

    def forget_conns(self, ids: list[int]) -> None:
        """The tracker forgot these connections (finished long ago): so do we."""
        for cid in ids:
            state = self._conns.pop(cid, None)
            if state is not None:
                self.forget(state)

    def start(self, a: Annotation) -> ConnAnalysis:
        """The bookkeeping of a new connection; ``a`` is its first annotation."""
        seg = a.seg
        key = min(seg.flow, reverse_flow(seg.flow))
        if key in self._conn_of_tuple and seg.flags & (SYN | ACK) == SYN:
            a.analysis = [*a.analysis, "reused_ports"]
        self._conn_of_tuple[key] = a.conn
        return ConnAnalysis(key, a.conn)

    def forget(self, state: ConnAnalysis) -> None:
        """A finished connection is gone: forget its 4-tuple if no newer one has it.

        A SYN on that 4-tuple afterwards is no longer flagged reused_ports: the tracker
        forgets a connection only long after TIME_WAIT, when reuse is ordinary.
        """
        if self._conn_of_tuple.get(state.key) == state.conn:
            del self._conn_of_tuple[state.key]

    def analyze(self, a: Annotation, state: ConnAnalysis) -> None:
        """Add the flags Wireshark gives the segment of ``a`` to ``a.analysis``."""
        seg = a.seg
        fwd, rev = (state.c, state.s) if a.from_client else (state.s, state.c)
        flags = seg.flags
        hs = state.handshake
        if flags & SYN or (hs.syn_ts and not hs.rtt):
            self._scale(seg, fwd, rev, hs)
        seq, ack, seglen = seg.seq, seg.ack, seg.payload
        window = seg.window
        if fwd.wscale >= 0 and not flags & SYN:
            window <<= fwd.wscale
        out = a.analysis
        if out is NO_FLAGS:     # shared: a list of its own, kept if a flag comes
            out = []
        seen = fwd.seen
        nxt = fwd.nextseq
        if not seen:
            fwd.base = seq if flags & SYN else (seq - 1) & MASK
        elif flags & SYN and seq != fwd.base:
            out.append("reused_ports")   # a SYN with a new ISN on a 4-tuple already in use
            fwd.base = seq
        ctl = flags & (SYN | FIN | RST)
        marks = 0          # KEEP_ALIVE / ZERO_WINDOW_PROBE, remembered for the peer
        dupack = done = False
        if (seen and seq == nxt and not ctl and window and (seglen or ack != fwd.lastack)
                and (seglen != 1 or rev.window)):
            # In order with nothing unusual (the common case): of the checks in the
            # branches below, only window_full can apply.
            if (seglen and rev.wscale != -1 and rev.window >= 0
                    and (seq + seglen) & MASK == (rev.lastack + rev.window) & MASK):
                out.append("window_full")
        elif seglen == 1 and seen and seq == nxt and rev.window == 0:
            out.append("zero_window_probe")
            marks = ZWP
            done = True
        else:
            if window == 0 and not ctl:
                out.append("zero_window")
            if nxt and 0 < ((seq - nxt) & MASK) < 0x80000000 and not flags & RST:
                out.append("lost_segment")
            if seglen <= 1 and seen and seq == (nxt - 1) & MASK and not ctl:
                out.append("keep_alive")
                marks = KEEP_ALIVE
            if seglen:
                if (rev.wscale != -1 and rev.window >= 0 and not ctl
                        and (seq + seglen) & MASK == (rev.lastack + rev.window) & MASK):
                    out.append("window_full")
            elif not ctl and seq == nxt and ack == fwd.lastack:
                if window and window != fwd.window:
                    out.append("window_update")
                elif window == fwd.window and seen:
                    if window and rev.last_marks & KEEP_ALIVE:
                        out.append("keep_alive_ack")
                        done = True
                    elif not window and rev.last_marks & ZWP:
                        out.append("zero_window_probe_ack")
                        done = True
                    elif window:
                        fwd.dupacknum += 1
                        out.append("duplicate_ack")
                        out.append(f"duplicate_ack_num={fwd.dupacknum}")
                        dupack = True
        if not dupack:
            fwd.dupacknum = 0
        maxack = rev.maxseqtobeacked
        if maxack and flags & ACK and 0 < ((ack - maxack) & MASK) < 0x80000000:
            out.append("ack_lost_segment")
            rev.maxseqtobeacked = rev.nextseq
        if (not done and (seglen > 0 or flags & (SYN | FIN)) and nxt
                and 0 < ((nxt - seq) & MASK) < 0x80000000 and not marks & KEEP_ALIVE):
            self._retransmission_kind(a, fwd, rev, hs.rtt, seq, seglen, out)
        if out:
            a.analysis = out
        end = (seq + seglen + (1 if flags & (SYN | FIN) else 0)) & MASK
        if not marks & ZWP:
            if not nxt or 0 < ((end - nxt) & MASK) < 0x80000000:
                fwd.nextseq = end
                fwd.nextseq_ts = seg.ts
            if not fwd.maxseqtobeacked or seq == fwd.maxseqtobeacked:
                fwd.maxseqtobeacked = fwd.nextseq
        fwd.window = window
        fwd.lastack = ack
        fwd.lastack_ts = seg.ts
        fwd.last_marks = marks
        fwd.seen = True

    @staticmethod
    def _retransmission_kind(a: Annotation, fwd: Flow, rev: Flow, rtt: float,
                             seq: int, seglen: int, out: list[str]) -> None:
        ts = a.seg.ts
        # Data the receiver has already acknowledged: supersedes the kinds below.
        if seglen > 0 and rev.lastack and not seq_lt(rev.lastack, (seq + seglen) & MASK):
            out += ["spurious_retransmission", "retransmission"]
            return
        if (rev.dupacknum >= 2 and rev.lastack == seq
                and ts - rev.lastack_ts < FAST_RETRANSMISSION_WINDOW):
            out += ["fast_retransmission", "retransmission"]
            return
        threshold = rtt if rtt > 0 else DEFAULT_OOO_THRESHOLD
        end = (seq + seglen + (1 if a.seg.flags & (SYN | FIN) else 0)) & MASK
        if ts - fwd.nextseq_ts < threshold and fwd.nextseq != end:
            out.append("out_of_order")
            return
        out.append("retransmission")

    @staticmethod
    def _scale(seg: Segment, fwd: Flow, rev: Flow, handshake: HandshakeRtt) -> None:
        """Window scale from the SYNs; the handshake RTT."""
        flags = seg.flags
        if flags & SYN:
            shift = (seg.opts or {}).get("wscale")
            fwd.wscale = shift if shift is not None else -2
            if flags & ACK and (fwd.wscale == -2 or rev.wscale == -2):
                fwd.wscale = rev.wscale = -2   # scaling needs both sides
        handshake.feed(flags, seg.ts, rev.seen)
