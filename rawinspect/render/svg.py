"""SVG ladder diagrams: one picture per connection, time running down.

Each endpoint has a lifeline and beside it a band coloured by its TCP state; arrows run
from sender to receiver, slanted, labelled with frame, flags, relative seq/ack and
length; each state change is written where it happens; a legend names the colours.
Each arrow's explanation is its tooltip and, for a PNG or a printout, a numbered circle
beside its label: below the legend the numbered explanations are written out, wrapped
(arrows that share an explanation share its number).
Vertical spacing follows the capture's timing where that stays readable: gaps are
scaled, then clamped between a minimum (so close segments do not overlap) and a maximum
(long idle times are cut and marked with their length). Segments that crossed on the wire
(simultaneous open and close, a FIN that crossed data) are drawn crossing, labelled
"✕ crossed N": the rows and the crossings are ``layout``'s, shared with the HTML report. A picture holds at most
MAX_SEGMENTS segments and MAX_PICTURES connections are drawn; the rest is said on stderr.

A traced program's calls, signals and exits are rows of their own in time order among the
arrows: a dot on their side's lifeline (the client's when the side is not known) and the
call's text beside it between the lifelines; failed calls in red, signals and exits in
magenta. The call that caused a state change ends its segment's explanation. Calls of no
connection (a failed bind(), a signal or an exit not tied to a socket) are in no picture:
they are skipped, and their number is said on stderr.

UDP datagrams get pictures of their own, one per pair of endpoints (``svg_udp``):
FILE-udpN.svg beside the connections' (FILE.svg when nothing else is drawn).
"""

from __future__ import annotations

import sys
import textwrap
from collections import defaultdict
from html import escape
from typing import Sequence

from ..core.annotation import Annotation
from ..core.call import CALL, Call
from ..core.datagram import Datagram
from .ladder import call_label, changed, label
from .layout import MIN_GAP, Event, Row, arrivals, crossings, rows
from .svg_udp import udp_picture

MAX_SEGMENTS = 400
MAX_PICTURES = 50
WIDTH, LEFT_X, RIGHT_X, TOP = 900, 230, 670, 110
CHAR_W, NOTE_LINE, NOTE_CHARS = 7.2, 16, 112  # monospace 12 px: width of a character
COLORS = {"CLOSED": "#d9d9d9", "LISTEN": "#b3cde3", "SYN_SENT": "#ccebc5",
          "SYN_RCVD": "#a8ddb5", "ESTABLISHED": "#4daf4a", "FIN_WAIT_1": "#fed976",
          "FIN_WAIT_2": "#feb24c", "CLOSE_WAIT": "#9ecae1", "CLOSING": "#fc9272",
          "LAST_ACK": "#6baed6", "TIME_WAIT": "#e31a1c"}
CALL_CHARS = int((RIGHT_X - LEFT_X - 30) / CHAR_W)  # a call's text between the lifelines



def _why(a: Annotation) -> str:
    """A segment's explanation: the note, and the call that caused the sender's change."""
    if a.cause:
        return f"{a.note} · {a.cause}" if a.note else a.cause
    return a.note


def _call_lines(c: Call) -> list[str]:
    """A call's text, wrapped to fit between the lifelines."""
    return textwrap.wrap(call_label(c), CALL_CHARS, break_on_hyphens=False)


def _extra(e: Event) -> float:
    """Height taken below a row by its text beyond one line (a call's wrapped text)."""
    return 0.0 if isinstance(e, Annotation) else (len(_call_lines(e)) - 1) * NOTE_LINE


def _rows(events: Sequence[Event]) -> list[Row]:
    """The y of each segment or call, and a mark for a cut idle gap ("" when none)."""
    return rows(events, float(TOP), [_extra(e) for e in events])


def _gap_mark(y: float, mark: str) -> list[str]:
    """The length of a cut idle gap, above the row after it."""
    if not mark:
        return []
    return [f'<text x="{WIDTH / 2}" y="{y - MIN_GAP / 2:.1f}" text-anchor="middle" '
            f'fill="#888">⋯ {mark} ⋯</text>']


def _header(anns: list[Annotation], total: int, bottom: float, height: float) -> list[str]:
    """The document's start: arrow head, background, title, lifelines."""
    first = anns[0]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
           f'height="{height:.0f}" font-family="monospace" font-size="12">',
           '<defs><marker id="head" markerWidth="10" markerHeight="8" refX="9" refY="4" '
           'orient="auto"><path d="M0,0 L10,4 L0,8 z" fill="#222"/></marker></defs>',
           f'<rect width="{WIDTH}" height="{height:.0f}" fill="white"/>',
           f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15" '
           f'font-weight="bold">conn {first.conn}: client {escape(first.client)} ⇄ server '
           f'{escape(first.server)}</text>']
    if total > len(anns):
        out.append(f'<text x="{WIDTH / 2}" y="42" text-anchor="middle" fill="#c00">'
                   f'first {len(anns)} of {total} segments</text>')
    for x, who, ep in ((LEFT_X, "client", first.client), (RIGHT_X, "server", first.server)):
        out.append(f'<text x="{x}" y="70" text-anchor="middle" font-weight="bold">{who}'
                   f'</text><text x="{x}" y="86" text-anchor="middle">{escape(ep)}</text>')
        out.append(f'<line x1="{x}" y1="{TOP - 14}" x2="{x}" y2="{bottom}" stroke="#555"/>')
    return out


def _bands(anns: list[Annotation], rows: list[Row], arrive: list[float],
           bottom: float) -> list[str]:
    """Each endpoint's state from one change to the next, as a coloured band: the
    sender's changes where its arrow leaves, the receiver's where it arrives."""
    out: list[str] = []
    first = anns[0]
    for x, client in ((LEFT_X, True), (RIGHT_X, False)):
        band_x = x - 22 if client else x + 8
        text_x = x - 28 if client else x + 28
        anchor = "end" if client else "start"
        state = first.client_before if client else first.server_before
        start = TOP - 14.0
        changes = []
        for a, (y, _mark), end in zip(anns, rows, arrive):
            steps = changed(a.client_path if client else a.server_path)
            if steps:
                at = y if a.from_client == client else end
                changes.append((at, state, steps))
                state = steps[-1]
        for at, old, steps in changes:
            out.append(f'<rect x="{band_x}" y="{start:.1f}" width="14" height="'
                       f'{max(at - start, 1):.1f}" fill="{COLORS.get(old, "#fff")}">'
                       f'<title>{old}</title></rect>')
            out.append(f'<text x="{text_x}" y="{at + 4:.1f}" text-anchor="{anchor}" '
                       f'font-weight="bold" fill="#333">{" → ".join(steps)}</text>')
            start = at
        out.append(f'<rect x="{band_x}" y="{start:.1f}" width="14" height="'
                   f'{max(bottom - start, 1):.1f}" fill="{COLORS.get(state, "#fff")}">'
                   f'<title>{state}</title></rect>')
    return out


def _arrows(anns: list[Annotation], rows: list[Row], arrive: list[float],
            crossed: list[list[int]], numbers: dict[str, int]) -> list[str]:
    """One slanted arrow per segment, its label (the explanation as tooltip) and the
    number of its explanation in a circle after the label. A segment crossed on the
    wire reaches its receiver after the one that crossed it left (``layout``)."""
    out: list[str] = []
    late = {f: a.seg.frame for a, frames in zip(anns, crossed) for f in frames}
    for a, (y, mark), end, across in zip(anns, rows, arrive, crossed):
        x1, x2 = (LEFT_X, RIGHT_X) if a.from_client else (RIGHT_X, LEFT_X)
        color = "#c00" if a.seg.flags & 0x04 else "#a0a" if a.analysis else "#222"
        dash = ' stroke-dasharray="5,3"' if a.analysis else ""
        why = _why(a)
        out.extend(_gap_mark(y, mark))
        cross = (f' data-crossed="{" ".join(map(str, across))}"' if across else
                 f' data-crossed-by="{late[a.seg.frame]}"' if a.seg.frame in late else "")
        out.append(f'<line class="segment" data-frame="{a.seg.frame}"{cross} x1="{x1}" '
                   f'y1="{y:.1f}" x2="{x2}" y2="{end:.1f}" stroke="{color}"{dash} '
                   'stroke-width="1.5" marker-end="url(#head)"/>')
        text = f"{a.seg.frame}: {label(a)}"
        if across:
            text += f" ✕ crossed {', '.join(map(str, across))}"
        if a.analysis:
            text += f" [{', '.join(a.analysis)}]"
        out.append(f'<text class="label" x="{(LEFT_X + RIGHT_X) / 2}" y="{y + 2:.1f}" '
                   f'text-anchor="middle" fill="{color}">{escape(text)}<title>'
                   f'{escape(why)}</title></text>')
        if why:
            n = numbers[why]
            cx = min((LEFT_X + RIGHT_X) / 2 + len(text) * CHAR_W / 2 + 14, RIGHT_X - 16)
            out.append(f'<g class="marker" data-note="{n}" data-frame="{a.seg.frame}">'
                       f'<title>{escape(why)}</title><circle cx="{cx:.1f}" '
                       f'cy="{y - 2:.1f}" r="8" fill="#fff" stroke="#36c"/><text '
                       f'x="{cx:.1f}" y="{y + 2:.1f}" text-anchor="middle" font-size="10" '
                       f'fill="#36c">{n}</text></g>')
    return out


def _calls(calls: list[Call], rows: list[Row]) -> list[str]:
    """Each call as a dot on its side's lifeline and its text beside it, in the lane."""
    out: list[str] = []
    for c, (y, mark) in zip(calls, rows):
        server = c.side == "server"
        x = RIGHT_X if server else LEFT_X
        tx, anchor = (x - 10, "end") if server else (x + 10, "start")
        color = "#c00" if c.failed else "#a0a" if c.kind != CALL else "#036"
        out.extend(_gap_mark(y, mark))
        out.append(f'<g class="call" data-side="{escape(c.side)}" data-pid="{c.pid}" '
                   f'data-failed="{str(c.failed).lower()}"><title>{escape(call_label(c))}'
                   f'</title><circle cx="{x}" cy="{y:.1f}" r="4" fill="{color}"/>')
        for i, line in enumerate(_call_lines(c)):
            out.append(f'<text class="call-label" x="{tx}" y="{y + 4 + i * NOTE_LINE:.1f}" '
                       f'text-anchor="{anchor}" fill="{color}">{escape(line)}</text>')
        out.append("</g>")
    return out


def _numbers(anns: list[Annotation]) -> dict[str, int]:
    """A number for each distinct explanation, in order of first appearance."""
    numbers: dict[str, int] = {}
    for a in anns:
        why = _why(a)
        if why and why not in numbers:
            numbers[why] = len(numbers) + 1
    return numbers


def _explanations(anns: list[Annotation], numbers: dict[str, int],
                  top: float) -> tuple[list[str], float]:
    """The numbered explanations, wrapped, from ``top`` down; and where they end."""
    if not numbers:
        return [], top
    frames: dict[str, list[int]] = defaultdict(list)
    for a in anns:
        why = _why(a)
        if why:
            frames[why].append(a.seg.frame)
    out = [f'<text x="20" y="{top + 12:.0f}" font-weight="bold">Explanations (the numbered '
           'circles beside the arrows)</text>']
    y = top + 12 + NOTE_LINE
    for note, n in numbers.items():
        which = frames[note]
        head = f"frame{'s' if len(which) > 1 else ''} {', '.join(map(str, which))}: "
        lines = textwrap.wrap(head + note, NOTE_CHARS, break_on_hyphens=False)
        out.append(f'<circle cx="28" cy="{y - 4:.0f}" r="8" fill="#fff" stroke="#36c"/>'
                   f'<text x="28" y="{y:.0f}" text-anchor="middle" font-size="10" '
                   f'fill="#36c">{n}</text>')
        for line in lines:
            out.append(f'<text class="explanation" data-note="{n}" x="44" y="{y:.0f}">'
                       f'{escape(line)}</text>')
            y += NOTE_LINE
        y += 4
    return out, y


def _first_segments(events: Sequence[Event], limit: int) -> list[Event]:
    """The events up to the ``limit``-th segment (the calls before the next one)."""
    out: list[Event] = []
    n = 0
    for e in events:
        if isinstance(e, Annotation):
            if n == limit:
                break
            n += 1
        out.append(e)
    return out


def picture(events: Sequence[Event]) -> str:
    """One connection's SVG document: its segments and its calls, in time order (at least
    one segment)."""
    total = sum(isinstance(e, Annotation) for e in events)
    events = _first_segments(events, MAX_SEGMENTS)
    all_rows = _rows(events)
    anns = [e for e in events if isinstance(e, Annotation)]
    rows = [r for e, r in zip(events, all_rows) if isinstance(e, Annotation)]
    calls = [e for e in events if isinstance(e, Call)]
    call_rows = [r for e, r in zip(events, all_rows) if isinstance(e, Call)]
    bottom = all_rows[-1][0] + _extra(events[-1]) + 60
    used = [s for s in COLORS if any(s in (a.client_before, a.server_before) or
                                     s in (a.client_path or ()) or s in (a.server_path or ())
                                     for a in anns)]
    legend = []
    for i, s in enumerate(used):
        lx, ly = 20 + (i % 6) * 145, bottom + 22 + (i // 6) * 20
        legend.append(f'<rect class="legend" x="{lx}" y="{ly - 10}" width="12" height="12" '
                      f'fill="{COLORS[s]}"/><text x="{lx + 16}" y="{ly}">{s}</text>')
    numbers = _numbers(anns)
    crossed = crossings(anns)
    arrive = arrivals(anns, [y for y, _ in rows], crossed)
    notes, end = _explanations(anns, numbers, bottom + 22 + (len(used) + 5) // 6 * 20)
    height = max(bottom + 70, end + 16)
    out = (_header(anns, total, bottom, height) + _bands(anns, rows, arrive, bottom)
           + _arrows(anns, rows, arrive, crossed, numbers) + _calls(calls, call_rows) + legend + notes
           + ["</svg>"])
    return "\n".join(out) + "\n"


class SvgRenderer:
    """Collects annotations and calls per connection; writes one SVG file per connection
    on close()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conns: dict[int, list[Event]] = defaultdict(list)
        self.drawn: set[int] = set()  # connections with a segment: those get a picture
        self.written: list[str] = []
        self.skipped = 0  # calls of no connection
        self.udp: dict[frozenset[str], list[Datagram]] = {}

    def write(self, anns: list[Annotation]) -> None:
        for a in anns:
            self.conns[a.conn].append(a)
            self.drawn.add(a.conn)

    def write_calls(self, calls: list[Call]) -> None:
        """Calls join their connection's picture; those of none are only counted."""
        for c in calls:
            if c.conn is None:
                self.skipped += 1
            else:
                self.conns[c.conn].append(c)

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """Datagrams go to their pair of endpoints' picture."""
        for d in datagrams:
            self.udp.setdefault(frozenset((d.sender, d.receiver)), []).append(d)

    def flush(self) -> None:
        """Pictures are drawn at the end."""

    def close(self) -> None:
        conns = sorted(self.drawn)
        skipped = self.skipped + sum(len(evs) for conn, evs in self.conns.items()
                                     if conn not in self.drawn)
        if len(conns) > MAX_PICTURES:
            print(f"rawinspect: {len(conns)} connections: drawing the first {MAX_PICTURES}; "
                  "choose others with --conn N", file=sys.stderr)
        stem = self.path[:-4] if self.path.endswith(".svg") else self.path
        for conn in conns[:MAX_PICTURES]:
            path = self.path if len(conns) == 1 else f"{stem}-conn{conn}.svg"
            with open(path, "w") as f:
                f.write(picture(self.conns[conn]))
            self.written.append(path)
        pairs = list(self.udp.values())[:MAX_PICTURES]
        for i, datagrams in enumerate(pairs, 1):
            path = self.path if len(pairs) == 1 and not conns else f"{stem}-udp{i}.svg"
            with open(path, "w") as f:
                f.write(udp_picture(datagrams))
            self.written.append(path)
        if skipped:
            print(f"rawinspect: {skipped} call{'s' if skipped > 1 else ''} on no connection "
                  "drawn: not in the pictures (the other formats list them)", file=sys.stderr)
        if self.written:
            print(f"rawinspect: wrote {', '.join(self.written)}", file=sys.stderr)
