"""A ladder (sequence) diagram in the terminal: client on the left, server on the right.

Each segment is an arrow over two lines, slanted from sender to receiver: it leaves the
sender on the first line, where the sender's new state is written (a state changes when
its side sends), and reaches the receiver on the second, beside the receiver's new state
(it changes when it receives). The explanation follows, wrapped to the width. A new
connection gets a header; the diagram streams, so it works live.
"""

from __future__ import annotations

import textwrap
from typing import TextIO

from ..core.annotation import Annotation

STATE_W = 11  # "ESTABLISHED"
SHORT = {"ESTABLISHED": "EST", "FIN_WAIT_1": "FW1", "FIN_WAIT_2": "FW2", "CLOSE_WAIT": "CW",
         "LAST_ACK": "LA", "TIME_WAIT": "TW", "SYN_SENT": "SS", "SYN_RCVD": "SR"}
RED, YELLOW, MAGENTA, DIM, BOLD, RESET = ("\x1b[31m", "\x1b[33m", "\x1b[35m", "\x1b[2m",
                                          "\x1b[1m", "\x1b[0m")
UNICODE = {"h": "─", "down": "╮", "up": "╰", "down_l": "╭", "up_l": "╯", "right": "►",
           "left": "◄", "lane": "│", "cut": "…"}
TO_ASCII = str.maketrans({"→": "->", "⇄": "<->", "…": "...", "≥": ">=", "≤": "<=",
                          "µ": "u", "×": "x"})
ASCII = {"h": "-", "down": ".", "up": "'", "down_l": ".", "up_l": "'", "right": ">",
         "left": "<", "lane": "|", "cut": "..."}


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

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and text.strip() else text

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

    def _arrow(self, a: Annotation) -> tuple[str, str]:
        g, lane = self.g, self.lane
        text = label(a)
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

    def _header(self, a: Annotation) -> list[str]:
        lane = self.g["lane"]
        left = f"client {a.client}"
        right = f"server {a.server}"
        title = self._paint(f"conn {a.conn}", BOLD)
        return ["", f"{title}: {left} ⇄ {right}" if self.g is UNICODE else
                f"{title}: {left} <-> {right}",
                f"{'':4} {a.client_before.rjust(STATE_W)} {lane}{' ' * self.lane}{lane} "
                f"{a.server_before}"]

    def write(self, anns: list[Annotation]) -> None:
        lines: list[str] = []
        lane = self.g["lane"]
        for a in anns:
            if a.conn != self.conn:
                self.conn = a.conn
                lines.extend(self._header(a))
            first, second = self._arrow(a)
            sender, receiver = ((a.client_path, a.server_path) if a.from_client
                                else (a.server_path, a.client_path))
            c1 = self._state(sender if a.from_client else None, False)
            s1 = self._state(None if a.from_client else sender, True)
            c2 = self._state(None if a.from_client else receiver, False)
            s2 = self._state(receiver if a.from_client else None, True)
            lines.append(f"{a.seg.frame:>4} {c1} {lane}{first}{lane} {s1}".rstrip())
            lines.append(f"{'':4} {c2} {lane}{second}{lane} {s2}".rstrip())
            why = a.note
            if a.analysis:
                why = f"[{', '.join(a.analysis)}] {why}".strip()
            lines.extend(f"{'':4} {'':{STATE_W}} {lane} " + self._paint(part, DIM)
                         for part in textwrap.wrap(why, self.width - STATE_W - 8,
                                                   break_on_hyphens=False))
        if lines:
            text = "\n".join(lines) + "\n"
            if self.g is ASCII:
                text = text.translate(TO_ASCII).encode("ascii", "replace").decode()
            self.out.write(text)

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Arrows are written as they come; nothing is held back."""
