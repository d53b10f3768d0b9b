"""Mermaid sequence diagrams, one per connection, in ```mermaid fences ready for Markdown.

Written when the input ends (a diagram needs all of its connection). Arrows carry the
frame number, flags, relative seq/ack and length; each state change is a note beside its
endpoint, after the arrow that caused it. RST arrows end in a cross; retransmissions
and other flagged segments are dotted.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TextIO

from ..core.annotation import Annotation
from .ladder import changed, label


def _text(s: str) -> str:
    """Mermaid message text: no statement separators or entity starts."""
    return s.replace(";", ",").replace("#", "no. ")


class MermaidRenderer:
    """Collects annotations per connection; writes the diagrams on close()."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.conns: dict[int, list[Annotation]] = defaultdict(list)

    def write(self, anns: list[Annotation]) -> None:
        for a in anns:
            self.conns[a.conn].append(a)

    def flush(self) -> None:
        """Diagrams are complete only at the end."""

    @staticmethod
    def diagram(anns: list[Annotation]) -> list[str]:
        """The lines of one connection's sequence diagram."""
        first = anns[0]
        lines = ["sequenceDiagram",
                 f"    participant C as client {first.client}",
                 f"    participant S as server {first.server}",
                 f"    Note left of C: {first.client_before}",
                 f"    Note right of S: {first.server_before}"]
        for a in anns:
            src, dst = ("C", "S") if a.from_client else ("S", "C")
            arrow = "-x" if a.seg.flags & 0x04 else "--)" if a.analysis else "->>"
            text = f"{a.seg.frame}: {label(a)}"
            if a.analysis:
                text += f" [{', '.join(a.analysis)}]"
            lines.append(f"    {src}{arrow}{dst}: {_text(text)}")
            for who, side, path in (("C", "left of", a.client_path),
                                    ("S", "right of", a.server_path)):
                if changed(path):
                    lines.append(f"    Note {side} {who}: {' → '.join(changed(path))}")
        return lines

    def close(self) -> None:
        parts = []
        for conn, anns in sorted(self.conns.items()):
            parts.append(f"conn {conn}: client {anns[0].client}, server {anns[0].server}\n\n"
                         "```mermaid\n" + "\n".join(self.diagram(anns)) + "\n```\n")
        self.out.write("\n".join(parts))
