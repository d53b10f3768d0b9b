"""The default human table: one row per segment, both endpoints' states side by side.

The layout is fixed up front from the width (the table streams): narrow columns for the
numbers, state columns as wide as the longest state (wider on a wide terminal), and a
path through several states wrapped onto continuation lines. The explanation ("Why") is
wrapped in the last column when there is room for it, else on indented lines below the
row. Nothing is cut. A connection's addresses are printed when it first appears.
The Time column shows tcpdump's choices: seconds since the first segment (the default),
the local date and time (-tttt), or the seconds since the previous segment (-ttt) or the
previous segment of the same connection; only the date and time widen it.

The traced programs' calls, signals and exits (issue 13) are rows of their own in time
order: "·" for a number, their time (the deltas count from segments only), the connection
when known, and ``[pid comm] text  cause`` from the column of the side that made them
(Client when not known) on into Why, wrapped; on a narrow table the row names the call in
its side's column and the text follows below, like explanations. Failed calls are red,
signals and exits magenta. Time 0 is the first row, a call's or a segment's.

UDP datagrams are rows too: their frame and time, ``UDP`` for flags, their length, and
``sender > receiver "payload"`` from the Client column on; no states, which the first
one says.
"""

from __future__ import annotations

import textwrap
from datetime import datetime
from typing import Callable, TextIO

from ..core.annotation import Annotation
from ..core.call import CALL, Call
from ..core.datagram import NO_STATES, Datagram
from ..core.options import options_text
from ..core.segment import ACK

HEADERS = ("No.", "Time", "Conn", "Dir", "Flags", "Seq", "Ack", "Len", "Client", "Server", "Why")
# No. .. Len; relative numbers are small. A longer cell pushes the next one along.
NUMBER_WIDTHS = (5, 9, 4, 3, 5, 7, 7, 5)
STATE_W = 12  # "ESTABLISHED→"
WIDE_STATE_W = 22  # "ESTABLISHED→FIN_WAIT_1"
WHY_MIN = 40  # the explanation gets its own column only with this much room
INDENT = 6  # explanations below the row start here
MIN_WIDTH = sum(NUMBER_WIDTHS) + 2 * STATE_W + len(NUMBER_WIDTHS) + 1
ABSOLUTE_W = len("YYYY-MM-DD HH:MM:SS.ffffff")

RED, YELLOW, MAGENTA, BOLD, RESET = ("\x1b[31m", "\x1b[33m", "\x1b[35m", "\x1b[1m", "\x1b[0m")

Cell = tuple[str, str]  # text and its colour ("" for none)
WARN_FLAGS = ("retransmission", "rst_out_of_window")
WRAPPED_KEPT = 4096  # distinct explanations whose wrapped lines are remembered
SIDES = ("client", "server")
HexLines = Callable[[Annotation], list[str]]  # -X: the lines under a row (render/hexdump)


def wrap_path(before: str, path: list[str] | None, width: int) -> list[str]:
    """The states an endpoint passed through, as lines of at most ``width`` characters
    broken after an arrow (a single state is never broken)."""
    states = path or [before]
    lines: list[str] = []
    cur = ""
    for i, state in enumerate(states):
        token = state + ("→" if i < len(states) - 1 else "")
        if cur and len(cur) + len(token) > width:
            lines.append(cur)
            cur = ""
        cur += token
    return lines + [cur]


def explanation(a: Annotation, verbose: bool = False) -> str:
    """The note, led by Wireshark's analysis flags; verbose: led by the window as the
    receiver reads it and the TCP options, as Wireshark writes them (``Win=65536 MSS=…``)."""
    text = a.note
    if a.analysis:
        text = f"[{', '.join(a.analysis)}] {text}".rstrip()
    if verbose:
        opts = options_text(a.seg, a.rel_ack if a.seg.flags & ACK else -1)
        text = f"Win={a.win_scaled}{' ' + opts if opts else ''}{'; ' + text if text else ''}"
    if a.cause:
        text = f"{text} · {a.cause}" if text else a.cause
    return text


def call_text(c: Call) -> str:
    """``[812 server.py] write(fd 4, 5 bytes) = -1 EPIPE  ← RST, frame 6``."""
    text = f"[{c.pid} {c.comm}] {c.text()}" if c.comm else f"[{c.pid}] {c.text()}"
    return f"{text}  {c.cause}" if c.cause else text


def call_name(c: Call) -> str:
    """The call in a word: ``close()``, ``SIGPIPE``, ``exit``."""
    return f"{c.name}()" if c.kind == CALL else c.name if c.name else c.kind


class TableRenderer:
    """Rows laid out for ``width`` columns, written as they come (a live capture's table
    lines up)."""

    def __init__(self, out: TextIO, color: bool, width: int = 80,
                 time: str = "relative", verbose: bool = False,
                 hexview: HexLines | None = None) -> None:
        self.out = out
        self.hexview = hexview
        self.verbose = verbose
        self.color = color
        self.time = time
        extra = ABSOLUTE_W - NUMBER_WIDTHS[1] if time == "absolute" else 0
        min_width = MIN_WIDTH + extra
        self.width = max(width, min_width)
        wide = self.width - min_width - 2 * (WIDE_STATE_W - STATE_W) >= 60
        state_w = WIDE_STATE_W if wide else STATE_W
        numbers = NUMBER_WIDTHS[:1] + (NUMBER_WIDTHS[1] + extra,) + NUMBER_WIDTHS[2:]
        widths = numbers + (state_w, state_w)
        self.starts = [sum(widths[:i]) + i for i in range(len(widths) + 1)]
        self.widths = widths
        # Every cell padded to its column: as long as this only when every cell fits.
        # (printf-style: it formats a row in half the time of str.format.)
        self._fmt = " ".join(f"%-{w}s" for w in widths)
        self._fixed_len = self.starts[-1] - 1
        self.state_w = state_w
        why_room = self.width - self.starts[-1]
        self.why_room = why_room if why_room >= WHY_MIN else 0
        self.t0: float | None = None
        self.last: dict[int, float] = {}  # conn-delta: each connection's latest time
        self.header_done = False
        self.seen: set[int] = set()
        self.udp_seen = False
        self._wrapped: dict[tuple[str, int], list[str]] = {}

    def _wrap(self, text: str, width: int) -> list[str]:
        """``text`` in lines of at most ``width``; explanations repeat, so this remembers."""
        if not text:
            return []
        if len(text) <= width:
            return [text]
        key = (text, width)
        lines = self._wrapped.get(key)
        if lines is None:
            if len(self._wrapped) >= WRAPPED_KEPT:
                self._wrapped.clear()
            lines = self._wrapped[key] = textwrap.wrap(text, width, break_on_hyphens=False)
        return lines

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and code and text.strip() else text

    def _line(self, cells: list[Cell]) -> str:
        """Cells placed at their columns, at least a space apart."""
        if self.color:
            return self._placed([t for t, _ in cells], [c for _, c in cells])
        texts = [t for t, _ in cells]
        n = len(self.widths)
        return self._plain_line(texts[:n], texts[n] if len(texts) > n else "")

    def _plain_line(self, texts: list[str], why: str) -> str:
        """The cells up to Server and ``why`` placed at their columns, at least a space
        apart, without colour."""
        line = self._fmt % tuple(texts)
        if len(line) == self._fixed_len:  # the common case: every cell fits its column
            return f"{line} {why}" if why else line.rstrip()
        return self._placed(texts + [why] if why else texts, None)

    def _placed(self, texts: list[str], codes: list[str] | None) -> str:
        """Cells placed one by one: a cell longer than its column pushes the next along."""
        parts: list[str] = []
        pos = 0
        for i, (text, start) in enumerate(zip(texts, self.starts)):
            if text:
                gap = start - pos
                if gap < 1:
                    gap = 1 if pos else 0
                parts.append(" " * gap)
                parts.append(self._paint(text, codes[i]) if codes else text)
                pos += gap + len(text)
        return "".join(parts)

    def _header_lines(self, conn: int, client: str, server: str) -> list[str]:
        """A connection's endpoints, wrapped to the width."""
        text = f"conn {conn}: client {client} → server {server}"
        lines = textwrap.wrap(text, self.width, subsequent_indent="    ",
                              break_on_hyphens=False)
        lines[0] = self._paint(f"conn {conn}", BOLD) + lines[0][len(f"conn {conn}"):]
        return lines

    def _head(self) -> list[str]:
        """The column headings, before the first row only."""
        if self.header_done:
            return []
        self.header_done = True
        heads = [(h, "") for h in HEADERS]
        lines = [self._line(heads if self.why_room else heads[:-1])]
        if not self.why_room:
            lines.append(" " * INDENT + HEADERS[-1])
        return lines

    def _clock(self, ts: float) -> str:
        """The Time cell of the relative and absolute modes ("" in the delta modes)."""
        if self.t0 is None:
            self.t0 = ts
        mode = self.time
        if mode == "relative":
            return f"{ts - self.t0:.6f}"
        if mode == "absolute":
            return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S.%f")
        return ""

    def _time(self, a: Annotation) -> str:
        """The Time cell in the chosen mode."""
        ts = a.seg.ts
        clock = self._clock(ts)
        if clock:
            return clock
        key = a.conn if self.time == "conn-delta" else 0
        prev = self.last.get(key, ts)
        self.last[key] = ts
        return f"{ts - prev:.6f}"

    def _call_time(self, c: Call) -> str:
        """A call's Time cell: the deltas count from the previous segment (of its
        connection, or of any for a call without one) and are not moved by the call."""
        ts = c.at
        clock = self._clock(ts)
        if clock:
            return clock
        mode = self.time
        if mode == "conn-delta" and c.conn is not None:
            prev = self.last.get(c.conn, ts)
        elif mode == "conn-delta":
            prev = max(self.last.values(), default=ts)
        else:
            prev = self.last.get(0, ts)
        return f"{ts - prev:.6f}"

    def call_rows(self, c: Call) -> list[str]:
        """The lines of one call: its row, the text from its side's column on (wrapped
        there), or below the row when the table has no Why column."""
        color = RED if c.failed else MAGENTA if c.kind != CALL else ""
        col = 9 if c.side == "server" else 8
        cells: list[Cell] = [("·", ""), (self._call_time(c), ""),
                             ("" if c.conn is None else str(c.conn), "")]
        cells += [("", "")] * (col - len(cells))
        text = call_text(c)
        if not self.why_room:
            name = call_name(c)[:self.state_w]
            lines = [self._placed([t for t, _ in cells] + [name],
                                  [k for _, k in cells] + [color] if self.color else None)]
            lines.extend(" " * INDENT + self._paint(line, color)
                         for line in self._wrap(text, self.width - INDENT))
            return lines
        start = self.starts[col]
        wrapped = self._wrap(text, self.width - start)
        lines = [self._placed([t for t, _ in cells] + [wrapped[0]],
                              [k for _, k in cells] + [color] if self.color else None)]
        lines.extend(" " * start + self._paint(line, color) for line in wrapped[1:])
        return lines

    def datagram_rows(self, d: Datagram, first: bool) -> list[str]:
        """The lines of one UDP datagram: its row, the text from the Client column on
        (wrapped there, or below the row when the table has no Why column); the first
        says that UDP has no states."""
        ts = d.ts
        clock = self._clock(ts)
        if not clock:   # the deltas: since the previous segment, and a datagram counts
            prev = max(self.last.values(), default=ts)
            self.last[0] = ts
            clock = f"{ts - prev:.6f}"
        cells = [str(d.frame), clock, "", "", "UDP", "", "", str(d.length)]
        text = f"{d.sender} > {d.receiver} {d.preview()}".rstrip()
        if first:
            text += f" · {NO_STATES}"
        start = self.starts[len(cells)] if self.why_room else INDENT
        wrapped = self._wrap(text, self.width - start)
        if not self.why_room:
            return [self._placed(cells, None)] + [" " * INDENT + w for w in wrapped]
        lines = [self._placed(cells + [wrapped[0]], None)]
        return lines + [" " * start + w for w in wrapped[1:]]

    def rows(self, a: Annotation) -> list[str]:
        """The lines of one annotation: the row, continuation lines for long state paths
        and the explanation."""
        seg = a.seg
        why = explanation(a, self.verbose)
        time = self._time(a)
        if not self.color:
            plain = self._plain_rows(a, time, why)
            if plain:
                return plain
        first: list[Cell] = [
            (str(seg.frame), ""), (time, ""), (str(a.conn), ""),
            ("→" if a.from_client else "←", ""),
            (seg.letters, RED if seg.flags & 0x04 else ""), (str(a.rel_seq), ""),
            (str(a.rel_ack), ""), (str(seg.payload), "")]
        client = wrap_path(a.client_before, a.client_path, self.state_w)
        server = wrap_path(a.server_before, a.server_path, self.state_w)
        warn = MAGENTA if any(f in WARN_FLAGS for f in a.analysis) else ""
        inline = self._wrap(why, self.why_room) if self.why_room else []
        lines: list[str] = []
        for i in range(max(len(client), len(server), len(inline), 1)):
            cells = first if i == 0 else [("", "")] * len(first)
            cells = cells + [(client[i] if i < len(client) else "",
                              YELLOW if a.client_path else ""),
                             (server[i] if i < len(server) else "",
                              YELLOW if a.server_path else ""),
                             (inline[i] if i < len(inline) else "", warn)]
            lines.append(self._line(cells))
        if why and not self.why_room:
            lines.extend(" " * INDENT + self._paint(line, warn)
                         for line in self._wrap(why, self.width - INDENT))
        return lines

    def _plain_rows(self, a: Annotation, time: str, why: str) -> list[str]:
        """The common case, without colour: the row on one line, its explanation beside
        it or below ([] when it takes more: ``rows`` lays it out cell by cell)."""
        room = self.why_room
        if room and len(why) > room:
            return []
        texts = self._one_line_cells(a, time)
        if texts is None:
            return []
        if room:
            return [self._plain_line(texts, why)]
        return [self._plain_line(texts, ""),
                *(" " * INDENT + below for below in self._wrap(why, self.width - INDENT))]

    def _one_line_cells(self, a: Annotation, time: str) -> list[str] | None:
        """The row's cells up to Server, or None when a state path takes two lines."""
        client = "→".join(a.client_path) if a.client_path else a.client_before
        server = "→".join(a.server_path) if a.server_path else a.server_before
        state_w = self.state_w
        if len(client) > state_w or len(server) > state_w:
            return None
        seg = a.seg
        return [str(seg.frame), time, str(a.conn), "→" if a.from_client else "←",
                seg.letters, str(a.rel_seq), str(a.rel_ack), str(seg.payload), client, server]

    def write(self, anns: list[Annotation]) -> None:
        lines = self._head()
        hexview = self.hexview
        for a in anns:
            if a.conn not in self.seen:
                self.seen.add(a.conn)
                lines.extend(self._header_lines(a.conn, a.client, a.server))
            lines.extend(self.rows(a))
            if hexview is not None:
                lines.extend(hexview(a))
        if lines:
            self.out.write("\n".join(lines) + "\n")

    def write_calls(self, calls: list[Call]) -> None:
        """A row for each call, between the segments written before and after it."""
        lines = self._head()
        for c in calls:
            if c.conn is not None and c.conn not in self.seen and c.side in SIDES \
                    and c.local and c.peer:
                self.seen.add(c.conn)
                client, server = (c.local, c.peer) if c.side == "client" else (c.peer, c.local)
                lines.extend(self._header_lines(c.conn, client, server))
            lines.extend(self.call_rows(c))
        if lines:
            self.out.write("\n".join(lines) + "\n")

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """A row for each UDP datagram, between the segments around it."""
        lines = self._head()
        for d in datagrams:
            lines.extend(self.datagram_rows(d, not self.udp_seen))
            self.udp_seen = True
        self.out.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Rows are written as they come; nothing is held back."""
