"""Findings: the socket mistake a connection shows, its evidence, and the fix (pure).

Wireshark's Expert Information names protocol events; a finding names what the program
did wrong. Each rule is a small documented function over one connection's facts
(``conn_facts.ConnFacts``, collected in one pass like the summaries: no rule keeps a
connection's segments) or over the whole run (``Run``: every connection, the calls that
belong to none, the sockets left behind). ``Diagnoser`` feeds the facts and runs the
rules at the end, or when the tracker retires a connection; ``diagnose`` does both for a
list. ``RULES`` lists the rules by name, each rule's docstring its lesson (``rawinspect
findings`` prints them). A rule that needs the programs' calls says so in its finding
when only the wire was seen, and claims only what the wire proves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, NamedTuple

from ..core.annotation import Annotation
from ..core.call import CALL, EXIT, SIGNAL, Call
from .calls import RECVS, SENDS
from .conn_facts import ConnFacts, FactsCollector, Side
from .spill import SortedSpill

ERROR, WARNING, NOTE = "error", "warning", "note"
SEVERITIES = (ERROR, WARNING, NOTE)
IDLE = 0.5          # seconds idle in CLOSE_WAIT or FIN_WAIT_2 before it counts as hanging
WIRE_ONLY = " (calls not recorded: from the wire only)"


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what happened, the frames and calls that prove it, and the fix."""
    rule: str
    severity: str
    conn: int | None
    frames: tuple[int, ...]
    calls: tuple[str, ...]
    what: str
    fix: str
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The jsonl record: ``{"kind": "finding", ...}``."""
        d: dict[str, Any] = {"kind": "finding", "rule": self.rule, "severity": self.severity,
                             "conn": self.conn, "frames": list(self.frames),
                             "calls": list(self.calls), "what": self.what, "fix": self.fix}
        if self.why:
            d["why"] = self.why
        return d


class Origin(NamedTuple):
    """What connect-same-port reads of a connection its client opened with a SYN."""
    conn: int
    client: str
    server: str
    frame: int          # the connection's first frame


def _by_ends(o: Origin) -> tuple[str, str, int]:
    """The order connect-same-port reads origins in: client, server, connection."""
    return (o.client, o.server, o.conn)


def origin(f: ConnFacts) -> Origin | None:
    """``f``'s origin, when its client sent a SYN to another endpoint."""
    if not f.syns or f.client == f.server:
        return None
    return Origin(f.conn, f.client, f.server, f.client_side.steps[0][2])


@dataclass
class Run:
    """What the run-level rules read; ``recorded`` False when only the wire was seen.
    ``facts``: the connections not retired; ``origins``: every connection's, by client,
    server and connection."""
    recorded: bool
    facts: dict[int, ConnFacts]
    loose: list[Call] = field(default_factory=list)
    bind_options: dict[int, set[str]] = field(default_factory=dict)
    left_behind: list[dict[str, Any]] = field(default_factory=list)
    origins: Iterable[Origin] = ()


ConnCheck = Callable[[ConnFacts, Run], Iterator[Finding]]
RunCheck = Callable[[Run], Iterator[Finding]]


@dataclass(frozen=True)
class Rule:
    """A named rule: ``check`` yields findings over one connection (``per_conn``) or the run."""
    name: str
    severity: str
    check: Callable[..., Iterator[Finding]]
    per_conn: bool = True
    needs_calls: bool = False

    @property
    def doc(self) -> str:
        """The rule's lesson: its check's docstring, on one line."""
        return " ".join((self.check.__doc__ or "").split())


def _texts(calls: list[Call]) -> tuple[str, ...]:
    return tuple(f"{c.text()} (pid {c.pid}, {c.side or '?'})" for c in calls)


def _calls(s: Side, *names: str, errno: str | None = None) -> list[Call]:
    return [c for c in s.calls if c.kind == CALL and c.name in names
            and (errno is None or c.errno == errno)]


def _other(who: str) -> str:
    return "server" if who == "client" else "client"


def _left(run: Run, f: ConnFacts, who: str, state: str) -> dict[str, Any] | None:
    """The socket left behind at the end on ``who``'s end of the connection, in ``state``."""
    local = f.client if who == "client" else f.server
    return next((s for s in run.left_behind if s.get("state") == state
                 and s.get("local") == local), None)


def close_wait_leak(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """CLOSE_WAIT left open: the peer closed, and this side's program went on holding its
    socket without calling close() (read() returned 0 and nothing followed). No timer
    ends CLOSE_WAIT: only close() or the process's exit does, and a server that does
    this leaks one descriptor per connection. Fix: call close() when read() returns 0."""
    for who in ("client", "server"):
        s, steps = f.side(who), f.side(who).steps
        if not steps.has("CLOSE_WAIT"):
            continue
        for i, (state, ts, frame) in enumerate(steps):
            if state != "CLOSE_WAIT":
                continue
            until = steps[i + 1][1] if i + 1 < len(steps) else f.last_ts
            if until - max(ts, s.last_data) < IDLE:
                continue
            eof = [c for c in _calls(s, *RECVS) if c.ret == 0][:1]
            how = (f"the {who} never called close() after {eof[0].name}() returned 0"
                   if eof else f"the {who} did not close after the {_other(who)}'s FIN")
            left = _left(run, f, who, "CLOSE_WAIT")
            held = (f"for {until - ts:.1f} s, and the kernel still held it at the end"
                    + (f" (pid {left['owners'][0]['pid']})" if left and left.get("owners")
                       else "") if left else
                    f"until the capture ended ({until - ts:.1f} s)" if i + 1 == len(steps)
                    else f"for {until - ts:.1f} s")
            yield Finding("close-wait-leak", WARNING, f.conn, (frame,), _texts(eof),
                          f"{how} at frame {frame}: its socket sat in CLOSE_WAIT {held}"
                          + ("" if run.recorded else WIRE_ONLY) + ".",
                          "Call close() when read() returns 0.",
                          "CLOSE_WAIT ends only when the program closes: no timer ends it.")


def fin_wait_2_hang(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """FIN_WAIT_2 left hanging: this side closed, its FIN was acknowledged, and the peer
    never sent its own. After close() the kernel gives up on the orphan after
    tcp_fin_timeout (60 s) and answers the peer's next segment with RST; after
    shutdown(SHUT_WR) it waits for ever. Fix the peer (it must close); give the read a
    timeout rather than wait for an EOF that may never come."""
    for who in ("client", "server"):
        steps, peer = f.side(who).steps, f.side(_other(who))
        if not steps.has("FIN_WAIT_2"):
            continue
        for i, (state, ts, frame) in enumerate(steps):
            if state != "FIN_WAIT_2":
                continue
            end = i + 1 == len(steps)
            until = f.last_ts if end else steps[i + 1][1]
            orphan = next((r for r in f.rsts if r[2] == who and r[3] == "RST (no socket)"
                           and r[1] >= ts), None)
            if orphan is None and until - max(ts, peer.last_data) < IDLE:
                continue
            frames = (frame,) + ((orphan[0],) if orphan else ())
            what = (f"the {who} waited in FIN_WAIT_2 from frame {frame} for the "
                    f"{_other(who)}'s FIN, which never came "
                    + (f"({until - ts:.1f} s, still waiting at the end)" if end and not orphan
                       else f"({until - ts:.1f} s)"))
            if orphan:
                what += (f"; the kernel dropped the orphaned socket (tcp_fin_timeout) and "
                         f"answered frame {orphan[0]} with RST")
            yield Finding("fin-wait-2-hang", NOTE if not orphan else WARNING, f.conn, frames,
                          (), what + ".",
                          f"Make the {_other(who)} call close() when read() returns 0; "
                          "give this side's reads a timeout.",
                          "FIN_WAIT_2 ends with the peer's FIN, or by tcp_fin_timeout for "
                          "a socket already closed.")


def rst_on_close(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """RST instead of FIN on close: close() with unread data in the receive buffer, or
    with SO_LINGER {on, 0}, aborts the connection; the peer's next call fails with
    ECONNRESET and the data in flight is lost. Fix: read until recv() returns 0 before
    close(), and keep SO_LINGER {on, 0} for deliberate aborts."""
    for frame, _ts, who, event in f.rsts:
        if event != "RST (abort)":
            continue
        me, peer = f.side(who), f.side(_other(who))
        closes = _calls(me, "close")
        got = sum(c.ret or 0 for c in _calls(me, *RECVS) if "MSG_PEEK" not in c.args)
        if "SO_LINGER" in me.options:
            why = "its socket had SO_LINGER {on, 0}"
        elif run.recorded and closes and peer.data_bytes > got:
            why = (f"{peer.data_bytes - got} bytes the {_other(who)} sent were still "
                   "unread in its receive buffer")
        elif not peer.data_bytes:
            why = ("no data had come in, so none was unread: SO_LINGER {on, 0} (or "
                   "an abort)")
        else:
            why = (f"{peer.data_bytes} bytes had come in from the {_other(who)}: unread "
                   "data, or SO_LINGER {on, 0}" + ("" if run.recorded else
                                                   " (the calls would tell which)"))
        yield Finding("rst-on-close", WARNING, f.conn, (frame,), _texts(closes[-1:]),
                      f"the {who} aborted the connection with RST at frame {frame} instead "
                      f"of a FIN: {why}.",
                      "Read until recv() returns 0 before close() (or shutdown(SHUT_WR) "
                      "and drain); use SO_LINGER {on, 0} only to abort on purpose.",
                      "close() with unread data, or a zero linger, sends RST (RFC 2525) "
                      "and discards what is queued.")


def _after_close(f: ConnFacts, who: str) -> tuple[int, int, int] | None:
    """``who`` sent data after the peer's FIN and the peer answered RST: (FIN, data, RST)."""
    me, peer = f.side(who), f.side(_other(who))
    if not me.data_after_peer_fin or not peer.fin_frame:
        return None
    rst = next((r for r in f.rsts if r[2] == _other(who) and r[0] > me.data_after_peer_fin
                and r[3] in ("RST (after close)", "RST (no socket)", "RST (abort)")), None)
    return (peer.fin_frame, me.data_after_peer_fin, rst[0]) if rst else None


def _shut_then_closed(s: Side) -> bool:
    shut = [c for c in _calls(s, "shutdown") if c.args != "SHUT_RD" and not c.failed]
    return bool(shut) and any(c.ts > shut[0].ts for c in _calls(s, "close"))


def write_after_peer_close(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Writing to a peer that has closed: data sent after the peer's FIN reaches a socket
    that is gone, which answers RST; the next write fails with EPIPE, or SIGPIPE kills
    the process (its default action). Fix: treat read() returning 0 as the end and stop
    writing; ignore SIGPIPE (or send with MSG_NOSIGNAL) so a write fails with EPIPE
    instead of killing the program."""
    for who in ("client", "server"):
        seen = _after_close(f, who)
        if seen is None or _shut_then_closed(f.side(_other(who))):
            continue
        fin, data, rst = seen
        me = f.side(who)
        epipe = _calls(me, *SENDS, errno="EPIPE")[:1]
        killed = [c for c in run.loose if c.kind == EXIT and c.args == "SIGPIPE"
                  and any(x.pid == c.pid for x in me.calls)][:1]
        result = ("SIGPIPE killed it" if killed else
                  f"its next {epipe[0].name}() failed with EPIPE" if epipe else
                  "its next write fails with EPIPE, or SIGPIPE kills it"
                  + ("" if run.recorded else WIRE_ONLY))
        yield Finding("write-after-peer-close", ERROR if killed or epipe else WARNING, f.conn,
                      (fin, data, rst), _texts(epipe + killed),
                      f"the {who} wrote at frame {data} after the {_other(who)}'s FIN at "
                      f"frame {fin}; the {_other(who)} answered RST at frame {rst}: {result}.",
                      "Stop writing when read() returns 0; ignore SIGPIPE or send with "
                      "MSG_NOSIGNAL, and handle EPIPE.",
                      "A FIN only says the peer sends no more; the RST says its socket is "
                      "gone.")


def half_close_misuse(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Half-close used wrongly: shutdown(SHUT_WR) sends the FIN and keeps the socket open
    for the peer's reply, but a close() before that reply arrives turns the reply into an
    RST (and the peer's write into EPIPE). Needs the calls: on the wire it looks like a
    write after the peer's close. Fix: after shutdown(SHUT_WR), read until recv()
    returns 0, then close()."""
    for who in ("client", "server"):
        seen = _after_close(f, _other(who))
        me = f.side(who)
        if seen is None or not _shut_then_closed(me):
            continue
        shut = [c for c in _calls(me, "shutdown") if c.args != "SHUT_RD"][:1]
        close = [c for c in _calls(me, "close") if c.ts > shut[0].ts][:1]
        yield Finding("half-close-misuse", ERROR, f.conn, seen, _texts(shut + close),
                      f"the {who} called shutdown(SHUT_WR) (FIN at frame {seen[0]}), then "
                      f"close() before the {_other(who)}'s reply at frame {seen[1]}, which "
                      f"it answered with RST at frame {seen[2]}.",
                      "After shutdown(SHUT_WR), read until recv() returns 0, then close().",
                      "close() ends both directions: data arriving afterwards is refused "
                      "with RST.")


def connection_refused(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Connection refused: nothing listens on the port the client connected to, and the
    host answers its SYN with RST; connect() fails with ECONNREFUSED. Fix: start the
    server (bind() and listen()) before the client connects, check the address and port,
    and retry with a delay if the server may start later."""
    rst = next((r for r in f.rsts if r[3] == "RST (refused)"), None)
    if rst is None:
        return
    failed = _calls(f.side("client"), "connect", errno="ECONNREFUSED")[:1]
    yield Finding("connection-refused", WARNING, f.conn, (rst[0],), _texts(failed),
                  f"nothing listened on {f.server}: the SYN was answered with RST at frame "
                  f"{rst[0]}" + (", connect() failed with ECONNREFUSED" if failed else "")
                  + ".",
                  "Start the server (listen()) before connecting, or fix the port; retry "
                  "connect() with a delay.",
                  "A SYN to a port with no listener is refused with RST.")


def listen_overflow(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """A listener whose queues overflow: SYNs sent again without answer (the SYN queue, or
    the accept queue, was full), the client's ACK dropped and the SYN+ACK sent again
    while the client already believes it is connected (a full accept queue), or no
    request kept at all (SYN cookies). The client waits seconds for each retry. Fix: a
    larger listen() backlog (and net.core.somaxconn), and accept() faster."""
    resent_syn = f.syns > 1
    # one ACK left in SYN_RCVD may be capture order; a second, or the SYN+ACK again, is not
    dropped = len(f.acks_dropped) > 1 or f.synack_again
    if not resent_syn and not dropped:
        return
    parts: list[str] = []
    frames: list[int] = []
    if resent_syn:
        answer = (f"answered at frame {f.synack}" if f.synack else "never answered")
        parts.append(f"the client sent its SYN {f.syns} times ({answer})")
        frames.extend(f.syn_frames[:2])
    if dropped and f.acks_dropped:
        parts.append(f"the server dropped the client's ACK/data at frames "
                     f"{', '.join(map(str, f.acks_dropped[:4]))}: its accept queue was full")
        frames.extend(f.acks_dropped[:2])
    if f.synack_again:
        parts.append(f"it sent its SYN+ACK again at frame {f.synack_again[0]} to a client "
                     "already ESTABLISHED")
        frames.append(f.synack_again[0])
    elif dropped:
        parts.append("it never sent its SYN+ACK again: it kept no request (SYN cookies)")
    if f.synack == 0 and not dropped:
        parts.append("a full listen queue, a host down or a firewall (the wire cannot tell)")
    yield Finding("listen-overflow", WARNING, f.conn, tuple(sorted(set(frames))), (),
                  "; ".join(parts) + ".",
                  "Give listen() a larger backlog (and net.core.somaxconn), and accept() "
                  "faster.",
                  "The kernel drops SYNs and final ACKs that its listen queues have no room "
                  "for; the peer resends after 1 s, 2 s, 4 s...")


def time_wait_on_server(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """TIME_WAIT on the server: the side that closes first keeps TIME_WAIT for 60 s, and
    when that is the server, each of its connections holds its port pair that long; a
    restarted server's bind() fails with EADDRINUSE without SO_REUSEADDR. Fix: let the
    client close first where the protocol allows, and set SO_REUSEADDR before bind()."""
    steps = f.side("server").steps
    if not steps.has("TIME_WAIT") or not f.listened or f.side("client").steps.has("TIME_WAIT"):
        return
    tw = next(s for s in steps if s[0] == "TIME_WAIT")
    yield Finding("time-wait-on-server", NOTE, f.conn, (tw[2],), (),
                  f"the server closed first, so the server ({f.server}) holds TIME_WAIT "
                  f"from frame {tw[2]} for 60 s.",
                  "Let the client close first where the protocol allows; set SO_REUSEADDR "
                  "before bind() so a restart can bind.",
                  "TIME_WAIT belongs to the active closer, for 2MSL.")


def eaddrinuse(run: Run) -> Iterator[Finding]:
    """A restart that fails with EADDRINUSE: bind() on a port that connections in
    TIME_WAIT still hold, on a socket without SO_REUSEADDR. Needs the calls. Fix: set
    SO_REUSEADDR on the listening socket before bind()."""
    for c in run.loose:
        if c.name != "bind" or c.errno != "EADDRINUSE":
            continue
        if "SO_REUSEADDR" in run.bind_options.get(id(c), set()):
            continue
        holders = [f for f in run.facts.values() if f.first_ts < c.ts
                   and any(s[0] == "TIME_WAIT" and s[1] <= c.ts for s in f.side("server").steps)]
        frames = tuple(next(s[2] for s in h.side("server").steps if s[0] == "TIME_WAIT")
                       for h in holders[-1:])
        held = (f": conn {holders[-1].conn}'s server side was in TIME_WAIT since frame "
                f"{frames[0]}" if holders else "")
        yield Finding("eaddrinuse", ERROR, holders[-1].conn if holders else None, frames,
                      _texts([c]), f"bind() failed with EADDRINUSE at {c.ts:.3f} s without "
                      f"SO_REUSEADDR{held}.",
                      "setsockopt(SOL_SOCKET, SO_REUSEADDR, 1) before bind().",
                      "A port with connections in TIME_WAIT cannot be bound again without "
                      "SO_REUSEADDR.")


def message_boundaries(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Message boundaries: TCP is a byte stream, so one recv() may return part of one
    message or several messages at once. A program that reads with one fixed buffer size
    as if each recv() were one message breaks when they differ. Needs the calls. Fix: frame
    the messages: fixed-length records, a delimiter, or a length prefix, and read until a
    whole message is in."""
    for sender in ("client", "server"):
        sends = [c.ret or 0 for c in _calls(f.side(sender), *SENDS) if (c.ret or 0) > 0]
        recvs = [c for c in _calls(f.side(_other(sender)), *RECVS)
                 if (c.ret or 0) > 0 and "MSG_PEEK" not in c.args]
        if len(sends) < 2 or not recvs or len({c.args for c in recvs}) > 1:
            continue
        ends, total = set(), 0
        for n in sends:
            total += n
            ends.add(total)
        pos, merged, split = 0, [], []
        for c in recvs:
            start, pos = pos, pos + (c.ret or 0)
            if pos > total:
                break
            if any(start < e < pos for e in ends):
                merged.append(c)
            elif pos not in ends:
                split.append(c)
        if not merged and not split:
            continue
        bad = (merged or split)[0]
        what = (f"one {bad.name}() returned {bad.ret} bytes, several of the {sender}'s "
                f"{len(sends)} writes at once" if merged else
                f"a {bad.name}() returned {bad.ret} bytes, part of one of the {sender}'s writes")
        yield Finding("message-boundaries", WARNING, f.conn, (), _texts([bad]),
                      f"{what}, and every read asked for the same {bad.args}: the program "
                      "reads as if one recv() were one message.",
                      "Frame the messages: a fixed length, a delimiter, or a length prefix; "
                      "read until a whole message is in.",
                      "TCP keeps the bytes' order, not the writes' boundaries.")


def nagle_delayed_ack(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Nagle meets delayed ACK: a small write waits in the kernel while an earlier small
    segment is unacknowledged (Nagle's algorithm), and the peer delays that ACK by 40 ms
    or more hoping to piggyback it (write-write-read). Each exchange loses the delay.
    Fix: TCP_NODELAY, or one larger write (build the message, or writev/sendmsg)."""
    for who in ("client", "server"):
        stalls = f.side(who).stalls
        if not stalls:
            continue
        first = stalls[0]
        writes = [c for c in _calls(f.side(who), *SENDS) if c.ts < first.ts][-1:]
        late = (f"; its {writes[0].name}() was made {1000 * (first.ts - writes[0].ts):.0f} ms "
                "earlier" if writes else "" if run.recorded else WIRE_ONLY)
        lost = sum(s.delay for s in stalls)
        nodelay = " although TCP_NODELAY was set" if "TCP_NODELAY" in f.side(who).options else ""
        yield Finding("nagle-delayed-ack", WARNING, f.conn,
                      (first.small_frame, first.ack_frame, first.frame),
                      _texts(writes),
                      f"the {who}'s data at frame {first.frame} waited for the "
                      f"{_other(who)}'s ACK of frame {first.small_frame}, delayed "
                      f"{1000 * first.delay:.0f} ms (frame {first.ack_frame}){late}{nodelay}; "
                      f"{len(stalls)} such stall{'s' if len(stalls) > 1 else ''}, "
                      f"{1000 * lost:.0f} ms in all.",
                      "Set TCP_NODELAY, or send the whole message in one write().",
                      "Nagle holds small data while any is unacknowledged; the receiver "
                      "delays its ACK up to 40 ms or more.")


def slow_reader(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """A slow reader: the receiver's window filled (window full) or closed (zero window),
    and the sender stalled, probing with persist probes until the window opened again.
    The receiving program does not read fast enough. Fix: read sooner and more (a larger
    buffer per recv(), a thread or event loop that keeps reading)."""
    if "zero_window" not in f.flags and "window_full" not in f.flags:
        return
    zero, full, probe = f.flag("zero_window"), f.flag("window_full"), f.flag("zero_window_probe")
    flag = zero if zero.count else full
    what = (f"the receive window closed {zero.count} time{'s' if zero.count > 1 else ''} "
            f"(zero window from frame {zero.frames[0]})" if zero.count else
            f"the sender filled the receive window {full.count} time"
            f"{'s' if full.count > 1 else ''} (from frame {full.frames[0]})")
    if probe.count:
        what += f", {probe.count} persist probes"
    update = f.flag("window_update")
    end = update.last if update.count and update.last > flag.first else f.last_ts
    yield Finding("slow-reader", WARNING, f.conn, tuple(flag.frames[:3] + probe.frames[:1]), (),
                  what + f"; the sender was held back {end - flag.first:.3f} s from the first "
                  "stall to the last window update.",
                  "Read faster: recv() more per call and do not block between reads.",
                  "TCP's flow control stops the sender when the receiver's buffer is full.")


def keep_alive(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Keep-alive probes on an idle connection: with SO_KEEPALIVE the kernel probes a
    peer that has been silent for tcp_keepalive_time (2 h by default). Nothing is wrong:
    the connection is idle. Fix, to notice a dead peer sooner: tune
    TCP_KEEPIDLE/INTVL/CNT, or send application heartbeats."""
    if "keep_alive" not in f.flags:
        return
    ka = f.flag("keep_alive")
    yield Finding("keep-alive", NOTE, f.conn, tuple(ka.frames[:3]), (),
                  f"{ka.count} keep-alive probe{'s' if ka.count > 1 else ''} on an idle "
                  f"connection, the first at frame {ka.frames[0]}.",
                  "Nothing to fix; tune TCP_KEEPIDLE or send heartbeats to detect a dead "
                  "peer sooner.",
                  "A keep-alive probe re-sends the last byte's sequence number to elicit "
                  "an ACK.")


def retransmission_timeout(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """Retransmission timeouts: a segment unacknowledged for the RTO (at least 200 ms,
    doubling each time) is sent again, and the program waits that long. On loopback
    nothing is lost on the wire: the receiver dropped it (a full queue or buffer). Fix:
    find what drops (backlog, receive buffer, a firewall), not the program's sends."""
    for who in ("client", "server"):
        s = f.side(who)
        if not s.rto_frames:
            continue
        yield Finding("retransmission-timeout", WARNING if s.rto_cost >= 1 else NOTE, f.conn,
                      tuple(s.rto_frames[:4]), (),
                      f"the {who} sent data again after a timeout "
                      f"{len(s.rto_frames)} time{'s' if len(s.rto_frames) > 1 else ''} "
                      f"(first at frame {s.rto_frames[0]}), {s.rto_cost:.1f} s lost waiting.",
                      "Find what drops the segments (a full queue or buffer, the path); "
                      "the program cannot speed it up.",
                      "An unacknowledged segment is resent after the RTO, which doubles "
                      "each time.")


def self_connect(f: ConnFacts, run: Run) -> Iterator[Finding]:
    """A client connected to itself: connect() to a local port where nothing listens,
    from an ephemeral port that happens to be that same port, makes a simultaneous open
    with itself; the program talks to itself and believes it has a server. Fix: server
    ports outside net.ipv4.ip_local_port_range, and check getsockname() != getpeername()."""
    if f.client != f.server:
        return
    yield Finding("self-connect", WARNING, f.conn, (f.side("client").steps[0][2],),
                  _texts(_calls(f.side("client"), "connect")[:1]),
                  f"the socket at {f.client} connected to itself: both ends are the same "
                  "address and port.",
                  "Use server ports outside ip_local_port_range; reject a connection whose "
                  "getsockname() equals getpeername().",
                  "A SYN to one's own port is a simultaneous open with oneself.")


def connect_same_port(run: Run) -> Iterator[Finding]:
    """connect() retried on the same local port: a client that bind()s a fixed port
    makes every retry reuse the same four-tuple, which the previous connection's
    TIME_WAIT (or a server still holding it) can refuse. Fix: let the kernel choose the
    client's port (no bind() before connect())."""
    repeated = [conns for _, group in groupby(run.origins, key=lambda o: (o.client, o.server))
                if len(conns := list(group)) > 1]
    for conns in sorted(repeated, key=lambda c: c[0].conn):
        client, server = conns[0].client, conns[0].server
        numbers = ", ".join(str(o.conn) for o in conns[:6])
        yield Finding("connect-same-port", NOTE, conns[1].conn,
                      tuple(o.frame for o in conns[:4]), (),
                      f"connections {numbers} all came from {client} to {server}: "
                      "connect() retried on the same local port.",
                      "Do not bind() the client to a fixed port; let connect() pick one.",
                      "A four-tuple is one connection at a time, and TIME_WAIT holds it "
                      "60 s.")


def zombies(run: Run) -> Iterator[Finding]:
    """A forking server that leaves zombies: its children exit and nobody reaps them
    with wait()/waitpid(), so each stays a zombie in the process table until the parent
    exits. Needs the calls. Fix: reap them, waitpid(-1, WNOHANG) in a loop in a SIGCHLD
    handler, or set SIGCHLD to SIG_IGN."""
    waits = [c for c in run.loose if c.name == "wait4" and c.kind == CALL]
    exits = [c for c in run.loose if c.kind == EXIT and c.ppid]  # a traced parent's child
    unreaped = [e for e in exits if not any(w.ret == e.pid and (w.end or w.ts) >= e.ts
                                            for w in waits)]
    if not unreaped:
        return
    pids = ", ".join(str(e.pid) for e in unreaped[:6])
    yield Finding("zombies", WARNING, None, (), _texts(unreaped[:3]),
                  f"{len(unreaped)} of {len(exits)} child processes exited and were never "
                  f"reaped by wait4() (pid {pids}): zombies until their parent exits.",
                  "Reap children: waitpid(-1, WNOHANG) in a loop in a SIGCHLD handler, or "
                  "signal(SIGCHLD, SIG_IGN).",
                  "A child's exit status stays in the process table until its parent "
                  "waits for it.")


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("close-wait-leak", WARNING, close_wait_leak),
    Rule("rst-on-close", WARNING, rst_on_close),
    Rule("write-after-peer-close", ERROR, write_after_peer_close),
    Rule("half-close-misuse", ERROR, half_close_misuse, needs_calls=True),
    Rule("connection-refused", WARNING, connection_refused),
    Rule("listen-overflow", WARNING, listen_overflow),
    Rule("time-wait-on-server", NOTE, time_wait_on_server),
    Rule("eaddrinuse", ERROR, eaddrinuse, per_conn=False, needs_calls=True),
    Rule("fin-wait-2-hang", NOTE, fin_wait_2_hang),
    Rule("message-boundaries", WARNING, message_boundaries, needs_calls=True),
    Rule("nagle-delayed-ack", WARNING, nagle_delayed_ack),
    Rule("slow-reader", WARNING, slow_reader),
    Rule("keep-alive", NOTE, keep_alive),
    Rule("retransmission-timeout", WARNING, retransmission_timeout),
    Rule("self-connect", WARNING, self_connect),
    Rule("connect-same-port", NOTE, connect_same_port, per_conn=False),
    Rule("zombies", WARNING, zombies, per_conn=False, needs_calls=True),
)}


def _checks(per_conn: bool, recorded: bool) -> list[Rule]:
    """The rules that run per connection (or over the run): those that need the calls
    only when they were recorded."""
    return [r for r in RULES.values()
            if r.per_conn == per_conn and (recorded or not r.needs_calls)]


def unchecked(recorded: bool) -> list[str]:
    """The rules that need the calls, when they were not recorded."""
    return [] if recorded else [r.name for r in RULES.values() if r.needs_calls]


class Diagnoser:
    """Feeds the facts as the run goes; ``results`` runs every rule at the end. A retired
    connection's rules run when it retires (``retire``), and only their findings and its
    origin are kept."""

    def __init__(self) -> None:
        self.collector = FactsCollector()
        self.recorded = False
        # The retired connections' findings (if any) by conn, and their origins by client,
        # server and conn: on disk once there are thousands.
        self.retired: SortedSpill[list[Finding]] = SortedSpill()
        self.origins: SortedSpill[Origin] = SortedSpill()
        self.retirements = 0

    def retire(self, conns: list[int]) -> None:
        """Connections that will see no more annotations, when no calls are recorded (a
        connection's calls may come later): their rules run now, and their facts go."""
        assert not self.recorded, "connections are retired only without calls"
        run, rules = Run(False, {}), _checks(True, False)
        for f in self.collector.forget(conns):
            self.retirements += 1
            found = [x for rule in rules for x in rule.check(f, run)]
            if found:
                self.retired.add(f.conn, found)
            o = origin(f)
            if o is not None:
                self.origins.add(_by_ends(o), o)

    def retire_all(self) -> None:
        """Retire every connection not retired yet (a ``replay -j`` worker at its end: the
        parent runs the run's rules, over every worker's connections)."""
        self.retire(sorted(self.collector.facts))

    def made(self) -> tuple[Iterable[tuple[int, list[Finding]]], Iterable[Origin]]:
        """The retired connections' findings (``(conn, findings)`` for each connection
        that has any) in connection order, and their origins by client, server and
        connection."""
        return self.retired.items(), (o for _, o in self.origins.items())

    def adopt(self, found: Iterable[tuple[int, list[Finding]]],
              origins: Iterable[Origin]) -> None:
        """Retired connections' findings and origins made elsewhere (by ``replay -j``'s
        workers), numbered as this run numbers its connections."""
        for conn, fs in found:
            self.retirements += 1
            self.retired.add(conn, fs)
        for o in origins:
            self.origins.add(_by_ends(o), o)

    def feed(self, anns: list[Annotation]) -> None:
        """The next annotations of the run, in capture order."""
        self.collector.feed(anns)

    def feed_calls(self, calls: list[Call]) -> None:
        """The programs' calls in time order, linked to connections (views/calls)."""
        self.recorded = True
        self.collector.feed_calls(calls)

    def results(self, left_behind: list[dict[str, Any]] | None = None) -> list[Finding]:
        """Every finding: per connection in connection order, then the run's."""
        return list(self.each(left_behind))

    def each(self, left_behind: list[dict[str, Any]] | None = None) -> Iterator[Finding]:
        """The findings of ``results``, made one connection at a time."""
        c = self.collector
        assert not (self.recorded and self.retirements), "retired connections had no calls"
        facts = dict(sorted(c.facts.items()))   # fed per connection, not in frame order
        origins = sorted((_by_ends(o), o) for o in map(origin, facts.values()) if o is not None)
        run = Run(self.recorded, facts, c.loose, c.bind_options, left_behind or [],
                  (o for _, o in self.origins.merged(origins)))
        rules = _checks(True, run.recorded)
        for conn, found in self.retired.among(facts):
            if found is not None:
                yield from found
                continue
            for rule in rules:
                yield from rule.check(facts[conn], run)
        for rule in _checks(False, run.recorded):
            yield from rule.check(run)


def diagnose(anns: list[Annotation], calls: list[Call] | None = None,
             left_behind: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Every finding over finished connections' timelines; calls None = not recorded."""
    d = Diagnoser()
    d.feed(anns)
    if calls is not None:
        d.feed_calls(calls)
    return d.results(left_behind)
