"""A Capture as HTML: each connection's summary line, findings and SVG ladder.

``ladders`` is what a Jupyter notebook shows for a Capture (its ``_repr_html_``);
``page`` is a whole standalone page (``Capture.html()``).
"""

from __future__ import annotations

from html import escape
from typing import Any

# A Capture and a Connection of rawinspect.api.results, which calls these functions (typed
# loosely so that the two modules do not import each other).
Capture = Any
Connection = Any


def _connection(c: Connection) -> str:
    head = (f"conn {c.number}: client {c.client.endpoint} "
            f"({' → '.join(c.client.states)}), server {c.server.endpoint} "
            f"({' → '.join(c.server.states)}); Zeek {c.conn_state} {c.history}")
    parts = [f"<h3>{escape(head)}</h3>"]
    if c.findings:
        items = "".join(f"<li><b>{escape(f.severity)} {escape(f.rule)}</b>: "
                        f"{escape(f.what)} <i>Fix: {escape(f.fix)}</i></li>"
                        for f in c.findings)
        parts.append(f"<ul>{items}</ul>")
    parts.append(f"<div>{c.svg()}</div>")
    return "\n".join(parts)


def ladders(capture: Capture, limit: int) -> str:
    """The first ``limit`` connections' ladders, inline; the others counted."""
    conns = capture.connections
    if not conns:
        return f"<p>rawinspect: {escape(capture.stats.summary())}</p>"
    out = [_connection(c) for c in conns[:limit]]
    if len(conns) > limit:
        out.append(f"<p>… {len(conns) - limit} more connections: "
                   "<code>capture.connection(N).svg()</code></p>")
    out.append(f"<p><small>rawinspect: {escape(capture.stats.summary())}</small></p>")
    return "\n".join(out)


def page(capture: Capture) -> str:
    """A standalone HTML document of every connection."""
    body = ladders(capture, len(capture.connections))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>rawinspect</title>"
            "</head>\n<body>\n" + body + "\n</body></html>\n")
