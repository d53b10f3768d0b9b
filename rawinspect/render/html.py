"""One self-contained HTML report per capture: header, connections, ladders, bytes.

The page carries everything inline (its CSS and JavaScript from ``html_assets/``, the
capture's facts as one JSON block) and a Content-Security-Policy that allows no network
access and no script but its own (by hash). Everything taken from the capture (payload,
addresses, calls, notes) travels as JSON data, with ``<``, ``>`` and ``&`` escaped as
``\\u003c``…, and the script puts it on the page as text only (``textContent``): a payload
holding ``<script>`` shows as text and runs nothing.

The segments' bytes: a renderer is given decoded Segments, not packets, so at close the
capture file named in ``ReportInfo.capture`` is read again (``wire_bytes``) and each
reported frame's TCP header and up to ``PAYLOAD_SHOWN`` bytes of its payload are taken
from it (found by the ports, sequence and acknowledgement numbers the Segment holds).
Without a file (a live capture without ``-w``) the header is rebuilt from the Segment's
fields, checksum and urgent pointer unknown, and the payload is not shown.

Rows and crossings come from ``layout``, as in the SVG picture; the page draws a window
of a large connection's ladder at a time (see the script), so a file grows linearly with
the capture and opens quickly.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from html import escape
from importlib import resources
from typing import Any

from ..core.annotation import Annotation
from ..core.call import CALL, Call
from ..core.datagram import NO_STATES, Datagram
from ..core.tracker import DEFAULT_MSL
from ..sources.capfile import CaptureFileError
from ..views.findings import Finding, diagnose
from ..views.summary import ConnSummary, Summaries
from .ladder import call_label
from .layout import MAX_GAP, MIN_GAP, PX_PER_MS, SLANT, Event, arrivals, crossings, rows
from .wire_bytes import read_bytes, rebuilt_header

PAYLOAD_SHOWN = 256  # payload bytes kept per segment in the page
TOP = 40.0           # y of a ladder's first row
CALL_LINE = 16.0     # a call's row takes one more line when its text is long
CALL_CHARS = 56
_CSP = ("default-src 'none'; script-src '{script}'; style-src '{style}'; img-src data:; "
        "base-uri 'none'; form-action 'none'")


@dataclass
class ReportInfo:
    """What the header says about the run; the command fills it in before close().

    ``capture``: the capture file the segments' bytes are read back from (replay's file,
    live capture's ``-w`` file once written), None when there is none.
    """
    what: str = ""
    capture: str | None = None
    interface: str = ""
    filter: str = ""
    packets: int | None = None
    dropped: int | None = None
    verdict: list[str] = field(default_factory=list)
    ok: bool | None = None


class _Strings:
    """Repeated texts (notes, events, states) kept once in the page, by index."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {"": 0}

    def __call__(self, text: str) -> int:
        n = self.index.get(text)
        if n is None:
            n = self.index[text] = len(self.index)
        return n

    def table(self) -> list[str]:
        return list(self.index)


def _asset(name: str) -> str:
    return (resources.files(__package__) / "html_assets" / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _path(path: list[str] | None) -> str:
    return " → ".join(path) if path and any(s != path[0] for s in path[1:]) else ""


class _Page:
    """The report's data, built at close from what the renderer kept."""

    def __init__(self, info: ReportInfo, found: dict[int, bytes]) -> None:
        self.info = info
        self.found = found
        self.s = _Strings()
        self.t0 = 0.0

    def segment(self, a: Annotation, y: float, arrive: float, crossed: list[int],
                mark: str) -> list[Any]:
        """One segment as the page's array (see SEGMENT in report.js)."""
        seg, s = a.seg, self.s
        raw = self.found.get(seg.frame)
        data = raw if raw is not None else rebuilt_header(seg)
        return [seg.frame, round(seg.ts - self.t0, 6), int(a.from_client), seg.flags, seg.seq,
                seg.ack, a.rel_seq, a.rel_ack, seg.window, a.win_scaled, seg.payload,
                round(y, 1), round(arrive, 1), crossed, s(a.event), s(a.note),
                s(", ".join(a.analysis)), s(_path(a.client_path)), s(_path(a.server_path)),
                s(a.cause), base64.b64encode(data).decode(), int(raw is None), s(mark)]

    def call(self, c: Call, y: float, mark: str) -> list[Any]:
        """One call as the page's array: y, side, text, kind (0 call, 1 failed, 2 signal
        or exit), gap mark."""
        kind = 1 if c.failed else 0 if c.kind == CALL else 2
        return [round(y, 1), int(c.side == "server"), self.s(call_label(c)), kind,
                self.s(mark)]

    def connection(self, events: list[Event], summary: ConnSummary | None) -> dict[str, Any]:
        """One connection: its summary, its segments and calls laid out."""
        extra = [0.0 if isinstance(e, Annotation) else
                 CALL_LINE * (len(call_label(e)) // CALL_CHARS) for e in events]
        ys = rows(events, TOP, extra)
        anns = [e for e in events if isinstance(e, Annotation)]
        seg_rows = [r for e, r in zip(events, ys) if isinstance(e, Annotation)]
        crossed = crossings(anns)
        arrive = arrivals(anns, [y for y, _ in seg_rows], crossed)
        first = anns[0]
        conn: dict[str, Any] = {
            "id": first.conn, "client": first.client, "server": first.server,
            "cb": first.client_before, "sb": first.server_before,
            "segs": [self.segment(a, y, end, c, mark) for a, (y, mark), end, c
                     in zip(anns, seg_rows, arrive, crossed)],
            "calls": [self.call(e, y, mark) for e, (y, mark) in zip(events, ys)
                      if isinstance(e, Call)],
            "height": round(ys[-1][0] + extra[-1] + 60, 1)}
        if summary is not None:
            conn.update(_summary(summary))
        return conn


def _summary(s: ConnSummary) -> dict[str, Any]:
    return {"state": s.conn_state, "history": s.history, "cfin": s.client_final,
            "sfin": s.server_final, "duration": round(s.duration, 6),
            "closer": s.closed_first, "pkts": list(s.pkts), "bytes": list(s.bytes),
            "rtt": s.rtt, "timing": {who: [[h.state, round(h.seconds, 6), h.frame]
                                           for h in held] for who, held in s.timing.items()}}


def _finding(f: Finding) -> dict[str, Any]:
    return {"rule": f.rule, "severity": f.severity, "conn": f.conn, "frames": list(f.frames),
            "calls": list(f.calls), "what": f.what, "fix": f.fix, "why": f.why}


def script_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<``, ``>`` or ``&`` left."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return (text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def document(data: dict[str, Any], title: str) -> str:
    """The whole page: its policy, style, data and script."""
    css, js = _asset("report.css"), _asset("report.js")
    csp = _CSP.format(script=_csp_hash(js), style=_csp_hash(css))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            "<meta name=\"referrer\" content=\"no-referrer\">\n"
            f"<title>rawinspect: {escape(title)}</title>\n<style>{css}</style>\n</head>\n"
            "<body>\n<noscript>This report is drawn by its own script: allow JavaScript "
            "for this file.</noscript>\n"
            f"<script type=\"application/json\" id=\"data\">{script_json(data)}</script>\n"
            f"<script>{js}</script>\n</body>\n</html>\n")


class HtmlRenderer:
    """Keeps every annotation and call; writes the report on close()."""

    def __init__(self, path: str, info: ReportInfo | None = None,
                 msl: float = DEFAULT_MSL) -> None:
        self.path = path
        self.info = info or ReportInfo()
        self.events: dict[int, list[Event]] = {}
        self.anns: list[Annotation] = []
        self.calls: list[Call] = []
        self.process_calls: list[Call] = []
        self.datagrams: list[Datagram] = []
        self.summaries = Summaries(2 * msl)

    def write(self, anns: list[Annotation]) -> None:
        for a in anns:
            self.events.setdefault(a.conn, []).append(a)
        self.anns.extend(anns)
        self.summaries.feed(anns)

    def write_calls(self, calls: list[Call]) -> None:
        """Calls join their connection's ladder; those of none go to the header."""
        self.calls.extend(calls)
        for c in calls:
            if c.conn is None:
                self.process_calls.append(c)
            else:
                self.events.setdefault(c.conn, []).append(c)

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """Datagrams are listed in the header, in frame order."""
        self.datagrams.extend(datagrams)

    def flush(self) -> None:
        """The report is written at the end."""

    def data(self) -> dict[str, Any]:
        """Everything the page shows, as its JSON."""
        info = self.info
        found = self._bytes()
        page = _Page(info, found)
        firsts = [x.ts for x in self.datagrams[:1]] + [a.seg.ts for a in self.anns[:1]]
        page.t0 = min(firsts, default=0.0)
        summaries = {s.conn: s for s in self.summaries.results()}
        conns = [page.connection(evs, summaries.get(n)) for n, evs in sorted(self.events.items())
                 if any(isinstance(e, Annotation) for e in evs)]
        findings = diagnose(self.anns, self.calls or None)
        span = self.anns[-1].seg.ts - page.t0 if self.anns else 0.0
        meta = {"what": info.what, "capture": info.capture or "", "interface": info.interface,
                "filter": info.filter, "packets": info.packets, "dropped": info.dropped,
                "segments": len(self.anns), "connections": len(conns),
                "start": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(page.t0)) +
                         f".{int(page.t0 % 1 * 1e6):06d} UTC" if self.anns else "",
                "span": round(span, 6), "verdict": info.verdict, "ok": info.ok,
                "bytes": "capture" if found else "rebuilt", "payloadShown": PAYLOAD_SHOWN,
                "processCalls": [call_label(c) for c in self.process_calls],
                "udpLesson": NO_STATES,
                "datagrams": [f"{d.frame}  {d.ts - page.t0:.6f}  {d.text()}"
                              for d in self.datagrams]}
        layout = {"minGap": MIN_GAP, "maxGap": MAX_GAP, "pxPerMs": PX_PER_MS, "slant": SLANT}
        return {"meta": meta, "layout": layout, "conns": conns,
                "findings": [_finding(f) for f in findings], "strings": page.s.table()}

    def _bytes(self) -> dict[int, bytes]:
        """The reported frames' bytes from the capture file, if there is one."""
        path = self.info.capture
        if not path or not self.anns:
            return {}
        try:
            return read_bytes(path, {a.seg.frame: a.seg for a in self.anns}, PAYLOAD_SHOWN)
        except (CaptureFileError, OSError) as e:
            print(f"rawinspect: html: segment bytes not shown: {e}", file=sys.stderr)
            return {}

    def close(self) -> None:
        title = self.info.what or self.path
        text = document(self.data(), title)
        try:
            with open(self.path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as e:
            print(f"rawinspect: error: -o {self.path}: {e.strerror or e}", file=sys.stderr)
            return
        print(f"rawinspect: wrote {self.path}", file=sys.stderr)
