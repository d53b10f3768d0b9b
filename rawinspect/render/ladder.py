"""A ladder (sequence) diagram in the terminal: client on the left, server on the right.

Each segment is an arrow over two lines, slanted from sender to receiver: it leaves the
sender on the first line, where the sender's new state is written (a state changes when
its side sends), and reaches the receiver on the second, beside the receiver's new state
(it changes when it receives). The explanation follows, wrapped to the width, with the
call that caused the sender's change. A new connection gets a header; the diagram
streams, so it works live.

A traced program's call is a label between the arrows on its side of the ladder, beside
the client's lifeline or the server's (the client's when the side is not known); calls
of a connection not drawn yet wait for its first arrow. Calls that belong to no
connection (a failed bind(), a signal, an exit) are listed at the end, as process calls.

A UDP datagram is a one-line arrow under a header of its own (``udp A ⇄ B``), with
no states: UDP has none.

A segment that crossed earlier ones on the wire (simultaneous open and close, a FIN that
crossed data; ``layout.Crossings``) has "✕ crossed N" after its label: the stream cannot
redraw the arrow it crossed.
"""

from __future__ import annotations

import textwrap
from typing import TextIO

from ..core.annotation import Annotation
from ..core.call import CALL, Call
from ..core.datagram import NO_STATES, Datagram
from .layout import Crossings

STATE_W = 11  # "ESTABLISHED"
SHORT = {"ESTABLISHED": "EST", "FIN_WAIT_1": "FW1", "FIN_WAIT_2": "FW2", "CLOSE_WAIT": "CW",
         "LAST_ACK": "LA", "TIME_WAIT": "TW", "SYN_SENT": "SS", "SYN_RCVD": "SR"}
RED, YELLOW, MAGENTA, DIM, BOLD, RESET = ("\x1b[31m", "\x1b[33m", "\x1b[35m", "\x1b[2m",
                                          "\x1b[1m", "\x1b[0m")
UNICODE = {"h": "─", "down": "╮", "up": "╰", "down_l": "╭", "up_l": "╯", "right": "►",
           "left": "◄", "lane": "│", "cut": "…"}
TO_ASCII = str.maketrans({"→": "->", "⇄": "<->", "…": "...", "≥": ">=", "≤": "<=",
                          "µ": "u", "×": "x", "←": "<-", "·": "-"})
ASCII = {"h": "-", "down": ".", "up": "'", "down_l": ".", "up_l": "'", "right": ">",
         "left": "<", "lane": "|", "cut": "..."}
KEPT = 4096  # connections whose latest states are remembered for a header after a call


def changed(path: list[str] | None) -> list[str]:
    """The states a path moved into; empty when it stayed where it was."""
    if not path or all(s == path[0] for s in path[1:]):
        return []
    return path[1:]


def label(a: Annotation) -> str:
    """tcpdump-like arrow label: flags, relative seq/ack, length."""
    seg = a.seg
    text = f"{seg.letters} {a.rel_seq}"
    if seg.flags & 0x10:
        text += f" ack {a.rel_ack}"
    if seg.payload:
        text += f" len {seg.payload}"
    return text


def call_label(c: Call) -> str:
    """``write(fd 4, 5 bytes) = -1 EPIPE ← RST, frame 6 [812 server.py]``: the call, the
    segment that explains it, and who made it."""
    who = f"{c.pid} {c.comm}" if c.comm else str(c.pid)
    return f"{c.text()} {c.cause} [{who}]" if c.cause else f"{c.text()} [{who}]"


def why(a: Annotation) -> str:
    """The note, led by the analysis flags, and the call that caused the change."""
    text = a.note
    if a.analysis:
        text = f"[{', '.join(a.analysis)}] {text}".strip()
    if a.cause:
        text = f"{text} · {a.cause}" if text else a.cause
    return text


class LadderRenderer:
    """Streams a two-line arrow per segment."""

    def __init__(self, out: TextIO, color: bool, ascii_only: bool = False,
                 width: int = 80) -> None:
        self.out = out
        self.color = color
        self.g = ASCII if ascii_only else UNICODE
        self.width = max(width, 60)
        self.lane = self.width - 2 * STATE_W - 9
        self.conn: int | None = None
        self.latest: dict[int, Annotation] = {}  # each connection's latest segment
        self.waiting: dict[int, list[Call]] = {}  # calls of connections not drawn yet
        self.process_calls: list[Call] = []  # calls of no connection
        self.crossings = Crossings()
        self.udp: frozenset[str] | None = None  # the endpoints of the datagrams drawn last
        self.udp_left: dict[frozenset[str], str] = {}  # each pair's left end: its first sender

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and code and text.strip() else text

    def _state(self, path: list[str] | None, right: bool) -> str:
        """The new state; a change through several states shows them all, abbreviated
        to fit the state column."""
        steps = changed(path)
        if not steps:
            return " " * STATE_W if not right else ""
        arrow = "→" if self.g is UNICODE else ">"
        text = steps[-1] if len(steps) == 1 else arrow.join(SHORT.get(x, x) for x in steps)
        if not right:
            text = text.rjust(STATE_W)
        return self._paint(text, YELLOW)

    def _arrow(self, a: Annotation, crossed: list[int]) -> tuple[str, str]:
        g, lane = self.g, self.lane
        text = label(a)
        if crossed:
            text += f" {'✕' if g is UNICODE else 'X'} crossed {','.join(map(str, crossed))}"
        if len(text) > lane - 6:
            text = text[:lane - 6 - len(g["cut"])] + g["cut"]
        if a.from_client:
            knee = max(len(text) + 4, lane // 2)
            first = (g["h"] * 2 + text).ljust(knee, g["h"]) + g["down"]
            second = " " * knee + g["up"] + g["h"] * (lane - knee - 2) + g["right"]
        else:
            knee = lane - max(len(text) + 4, lane // 2) - 1
            first = " " * knee + g["down_l"] + (g["h"] * 2 + text).ljust(lane - knee - 1,
                                                                             g["h"])
            second = g["left"] + g["h"] * (knee - 1) + g["up_l"]
        first, second = first.ljust(lane), second.ljust(lane)
        if self.color:
            code = RED if a.seg.flags & 0x04 else MAGENTA if a.analysis else ""
            if code:
                first, second = self._paint(first, code), self._paint(second, code)
        return first, second

    def _header(self, conn: int, client: str, server: str, client_state: str,
                server_state: str) -> list[str]:
        lane = self.g["lane"]
        left = f"client {client}"
        right = f"server {server}"
        title = self._paint(f"conn {conn}", BOLD)
        return ["", f"{title}: {left} ⇄ {right}" if self.g is UNICODE else
                f"{title}: {left} <-> {right}",
                f"{'':4} {client_state.rjust(STATE_W)} {lane}{' ' * self.lane}{lane} "
                f"{server_state}"]

    def _enter(self, a: Annotation) -> list[str]:
        """The header when the arrows move to ``a``'s connection, and the calls that
        waited for it."""
        self.conn, self.udp = a.conn, None
        lines = self._header(a.conn, a.client, a.server, a.client_before, a.server_before)
        for c in self.waiting.pop(a.conn, ()):
            lines.extend(self._call(c))
        return lines

    def _arrows(self, a: Annotation) -> list[str]:
        """One segment: the two lines of its arrow, the new states, and why."""
        lane = self.g["lane"]
        first, second = self._arrow(a, self.crossings.feed(a))
        sender, receiver = ((a.client_path, a.server_path) if a.from_client
                            else (a.server_path, a.client_path))
        c1 = self._state(sender if a.from_client else None, False)
        s1 = self._state(None if a.from_client else sender, True)
        c2 = self._state(None if a.from_client else receiver, False)
        s2 = self._state(receiver if a.from_client else None, True)
        lines = [f"{a.seg.frame:>4} {c1} {lane}{first}{lane} {s1}".rstrip(),
                 f"{'':4} {c2} {lane}{second}{lane} {s2}".rstrip()]
        lines.extend(f"{'':4} {'':{STATE_W}} {lane} " + self._paint(part, DIM)
                     for part in textwrap.wrap(self._text(why(a)), self.width - STATE_W - 8,
                                               break_on_hyphens=False))
        return lines

    def _text(self, text: str) -> str:
        """Free text in the glyphs of the diagram (translated before it is wrapped)."""
        return text.translate(TO_ASCII) if self.g is ASCII else text

    def _call(self, c: Call) -> list[str]:
        """A call's label between the lifelines, on its side, wrapped to the lane."""
        lane, room = self.g["lane"], self.lane - 2
        code = RED if c.failed else MAGENTA if c.kind != CALL else ""
        right = c.side == "server"
        lines = []
        for part in textwrap.wrap(self._text(call_label(c)), room, break_on_hyphens=False):
            text = part.rjust(room) if right else part.ljust(room)
            lines.append(f"{'':4} {'':{STATE_W}} {lane} {self._paint(text, code)} {lane}")
        return lines

    def _datagram(self, d: Datagram) -> list[str]:
        """A datagram's one-line arrow, after a header when its endpoints are new."""
        g, lane = self.g, self.lane
        pair = frozenset((d.sender, d.receiver))
        if len(self.udp_left) >= KEPT and pair not in self.udp_left:
            self.udp_left.clear()
        left = self.udp_left.setdefault(pair, d.sender)
        lines: list[str] = []
        if pair != self.udp:
            self.udp, self.conn = pair, None
            right = d.receiver if left == d.sender else d.sender
            lines = ["", f"{self._paint('udp', BOLD)}: {left} "
                     f"{'⇄' if g is UNICODE else '<->'} {right}",
                     f"{'':4} {'':{STATE_W}} {g['lane']} {self._text(NO_STATES)}"]
        text = f"UDP len {d.length} {d.preview(16)}".rstrip()
        if len(text) > lane - 6:
            text = text[:lane - 6 - len(g["cut"])] + g["cut"]
        if d.sender == left:
            arrow = (g["h"] * 2 + text).ljust(lane - 1, g["h"]) + g["right"]
        else:
            arrow = g["left"] + (text + g["h"] * 2).rjust(lane - 1, g["h"])
        lines.append(f"{d.frame:>4} {'':{STATE_W}} {g['lane']}{self._text(arrow)}{g['lane']}")
        return lines

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """Each datagram's arrow, between the segments around it."""
        self._out([line for d in datagrams for line in self._datagram(d)])

    def write(self, anns: list[Annotation]) -> None:
        lines: list[str] = []
        for a in anns:
            if a.conn != self.conn:
                lines.extend(self._enter(a))
            lines.extend(self._arrows(a))
            if len(self.latest) >= KEPT and a.conn not in self.latest:
                self.latest.clear()
            self.latest[a.conn] = a
        self._out(lines)

    def write_calls(self, calls: list[Call]) -> None:
        """Labels for the calls of drawn connections; the others wait or go to the end."""
        lines: list[str] = []
        for c in calls:
            if c.conn is None:
                self.process_calls.append(c)
            elif c.conn == self.conn:
                lines.extend(self._call(c))
            elif c.conn in self.latest:
                a = self.latest[c.conn]
                self.conn = c.conn
                lines.extend(self._header(a.conn, a.client, a.server, a.client_after,
                                          a.server_after))
                lines.extend(self._call(c))
            else:
                self.waiting.setdefault(c.conn, []).append(c)
        self._out(lines)

    def _out(self, lines: list[str]) -> None:
        if lines:
            text = "\n".join(lines) + "\n"
            if self.g is ASCII:
                text = text.translate(TO_ASCII).encode("ascii", "replace").decode()
            self.out.write(text)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """The calls of no connection drawn, listed: arrows and the other calls are
        written as they come."""
        rest = self.process_calls + [c for cs in self.waiting.values() for c in cs]
        if not rest:
            return
        lines = ["", self._paint("process calls", BOLD) + " (not on a connection drawn above):"]
        for c in sorted(rest, key=lambda c: c.at):
            code = RED if c.failed else MAGENTA if c.kind != CALL else ""
            lines.extend(self._paint(part, code) for part in textwrap.wrap(
                self._text(call_label(c)), self.width - 4, initial_indent="  ",
                subsequent_indent="    ", break_on_hyphens=False))
        self._out(lines)
