"""Mermaid sequence diagrams, one per connection, in ```mermaid fences ready for Markdown.

Written when the input ends (a diagram needs all of its connection). Arrows carry the
frame number, flags, relative seq/ack and length; each state change is a note beside its
endpoint, after the arrow that caused it, with the call that caused the sender's. RST
arrows end in a cross; retransmissions and other flagged segments are dotted.

UDP datagrams get a diagram per pair of endpoints, after the connections: an open
arrow per datagram and no states (UDP has none).

A traced program's call is a note on its side, in time order among the arrows (over both
when its side is not known); a failed call's note sits in a red box. Calls of no
connection (a failed bind(), a signal, an exit) are listed after the diagrams.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TextIO, Union

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import NO_STATES, Datagram
from .ladder import call_label, changed, label

Event = Union[Annotation, Call]
FAILED_BOX = "rgb(255, 221, 221)"


def _text(s: str) -> str:
    """Mermaid message text: no statement separators or entity starts."""
    return s.replace(";", ",").replace("#", "no. ")


def _call_note(c: Call) -> list[str]:
    """A call as a note on its side; a failed one in a red box."""
    where = {"client": "left of C", "server": "right of S"}.get(c.side, "over C,S")
    note = f"    Note {where}: {_text(call_label(c))}"
    return [f"    rect {FAILED_BOX}", "  " + note, "    end"] if c.failed else [note]


def _arrow(a: Annotation) -> list[str]:
    """A segment's arrow and the notes of the states it changed."""
    src, dst = ("C", "S") if a.from_client else ("S", "C")
    arrow = "-x" if a.seg.flags & 0x04 else "--)" if a.analysis else "->>"
    text = f"{a.seg.frame}: {label(a)}"
    if a.analysis:
        text += f" [{', '.join(a.analysis)}]"
    lines = [f"    {src}{arrow}{dst}: {_text(text)}"]
    for who, side, path, sender in (("C", "left of", a.client_path, a.from_client),
                                    ("S", "right of", a.server_path, not a.from_client)):
        if changed(path):
            note = " → ".join(changed(path))
            if sender and a.cause:  # "FIN_WAIT_1 ← close(fd 4), pid 812, client"
                note = a.cause if a.cause.startswith(note + " ") else f"{note} ({a.cause})"
            lines.append(f"    Note {side} {who}: {_text(note)}")
    return lines


class MermaidRenderer:
    """Collects annotations and calls per connection; writes the diagrams on close()."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.conns: dict[int, list[Event]] = defaultdict(list)
        self.process_calls: list[Call] = []
        self.udp: dict[frozenset[str], list[Datagram]] = {}

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        for d in datagrams:
            self.udp.setdefault(frozenset((d.sender, d.receiver)), []).append(d)

    @staticmethod
    def udp_diagram(datagrams: list[Datagram]) -> list[str]:
        """The lines of one pair of endpoints' datagrams: an open arrow each."""
        a, b = datagrams[0].sender, datagrams[0].receiver
        lines = ["sequenceDiagram", f"    participant A as {a}", f"    participant B as {b}",
                 f"    Note over A,B: {_text(NO_STATES)}"]
        for d in datagrams:
            src, dst = ("A", "B") if d.sender == a else ("B", "A")
            text = f"{d.frame}: UDP length {d.length} {d.preview(16)}".rstrip()
            lines.append(f"    {src}-){dst}: {_text(text)}")
        return lines

    def write(self, anns: list[Annotation]) -> None:
        for a in anns:
            self.conns[a.conn].append(a)

    def write_calls(self, calls: list[Call]) -> None:
        """Calls join their connection's diagram; the others are listed at the end."""
        for c in calls:
            if c.conn is None:
                self.process_calls.append(c)
            else:
                self.conns[c.conn].append(c)

    def flush(self) -> None:
        """Diagrams are complete only at the end."""

    @staticmethod
    def diagram(events: list[Event]) -> list[str]:
        """The lines of one connection's sequence diagram (it has at least one segment)."""
        first = next(e for e in events if isinstance(e, Annotation))
        lines = ["sequenceDiagram",
                 f"    participant C as client {first.client}",
                 f"    participant S as server {first.server}",
                 f"    Note left of C: {first.client_before}",
                 f"    Note right of S: {first.server_before}"]
        for e in events:
            lines.extend(_arrow(e) if isinstance(e, Annotation) else _call_note(e))
        return lines

    def close(self) -> None:
        parts = []
        rest = list(self.process_calls)
        for conn, events in sorted(self.conns.items()):
            first = next((e for e in events if isinstance(e, Annotation)), None)
            if first is None:  # calls of a connection whose segments were not shown
                rest.extend(e for e in events if isinstance(e, Call))
                continue
            parts.append(f"conn {conn}: client {first.client}, server {first.server}\n\n"
                         "```mermaid\n" + "\n".join(self.diagram(events)) + "\n```\n")
        for datagrams in self.udp.values():
            d = datagrams[0]
            parts.append(f"udp: {d.sender} ⇄ {d.receiver}\n\n```mermaid\n"
                         + "\n".join(self.udp_diagram(datagrams)) + "\n```\n")
        if rest:
            parts.append("process calls (not on a connection drawn above):\n\n" + "".join(
                f"- {call_label(c)}\n" for c in sorted(rest, key=lambda c: c.at)))
        self.out.write("\n".join(parts))
