"""The default human table: one row per segment, both endpoints' states side by side."""

from __future__ import annotations

from typing import TextIO

from ..core.annotation import Annotation

HEADERS = ("No.", "Time", "Conn", "Dir", "Flags", "Seq", "Ack", "Len", "Client", "Server", "Why")
# Cells are padded to these widths so that rows printed separately line up.
WIDTHS = (6, 10, 4, 3, 5, 10, 10, 5, 22, 22, 0)
SEP = "  "

RED, YELLOW, MAGENTA, DIM, RESET = "\x1b[31m", "\x1b[33m", "\x1b[35m", "\x1b[2m", "\x1b[0m"


def _states(before: str, path: list[str] | None) -> str:
    return "→".join(path) if path else before


class TableRenderer:
    """Fixed-width rows, written as they come, so a live capture's table lines up."""

    def __init__(self, out: TextIO, color: bool) -> None:
        self.out = out
        self.color = color
        self.t0: float | None = None
        self.header_done = False

    def _paint(self, text: str, code: str) -> str:
        return f"{code}{text}{RESET}" if self.color and text.strip() else text

    def row(self, a: Annotation) -> list[str]:
        """The cells of one annotation, padded to the column widths."""
        seg = a.seg
        if self.t0 is None:
            self.t0 = seg.ts
        why = a.note
        if a.analysis:
            why = f"[{', '.join(a.analysis)}] {why}".rstrip()
        cells = [str(seg.frame), f"{seg.ts - self.t0:.6f}", str(a.conn),
                 "→" if a.from_client else "←", seg.letters, str(a.rel_seq), str(a.rel_ack),
                 str(seg.payload), _states(a.client_before, a.client_path),
                 _states(a.server_before, a.server_path), why]
        cells = [c.ljust(w) for c, w in zip(cells, WIDTHS)]
        if self.color:
            if seg.flags & 0x04:
                cells[4] = self._paint(cells[4], RED)
            if a.client_path:
                cells[8] = self._paint(cells[8], YELLOW)
            if a.server_path:
                cells[9] = self._paint(cells[9], YELLOW)
            if "retransmission" in a.analysis or "rst_out_of_window" in a.analysis:
                cells[10] = self._paint(cells[10], MAGENTA)
        return cells

    def write(self, anns: list[Annotation]) -> None:
        lines = []
        if not self.header_done:
            self.header_done = True
            lines.append(SEP.join(h.ljust(w) for h, w in zip(HEADERS, WIDTHS)).rstrip())
        lines.extend(SEP.join(self.row(a)).rstrip() for a in anns)
        self.out.write("\n".join(lines) + "\n")

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Rows are written as they come; nothing is held back."""
