"""Failure messages a person can act on, for the assertions of Capture and Connection.

Each function returns "" when the check holds, else the message: what was expected beside
what happened (state sequences side by side), the segments that prove it, and the ladder
of each connection concerned, so that the failing test's report shows the exchange.
"""

from __future__ import annotations

from itertools import zip_longest
from typing import Any, Iterable, Sequence

from ..core.segment import FIN, RST
from ..views.findings import SEVERITIES

# A Capture and a Connection of rawinspect.api.results, which calls these functions (typed
# loosely so that the two modules do not import each other).
Capture = Any
Connection = Any

SEVERITY_ORDER = SEVERITIES    # the worst first
MAX_LADDERS = 3  # connections drawn in one message; the others are named


def side_by_side(expected: Sequence[str], actual: Sequence[str]) -> list[str]:
    """Expected and actual states in two columns; ``<<`` marks the rows that differ."""
    width = max([len("expected"), *map(len, expected)])
    lines = [f"     {'expected'.ljust(width)}  actual"]
    for i, (e, a) in enumerate(zip_longest(expected, actual, fillvalue="-"), 1):
        mark = "" if e == a else "   <<"
        lines.append(f"  {i:>2} {e.ljust(width)}  {a}{mark}")
    return lines


def ladders(conns: Iterable[Connection]) -> list[str]:
    """The ladder of each connection (at most MAX_LADDERS), in plain ASCII."""
    conns = list(conns)
    lines: list[str] = []
    for c in conns[:MAX_LADDERS]:
        lines.extend(["", *c.ladder(ascii=True, width=100).strip("\n").splitlines()])
    if len(conns) > MAX_LADDERS:
        rest = ", ".join(str(c.number) for c in conns[MAX_LADDERS:])
        lines.append(f"(connections {rest} not drawn)")
    return lines


def _where(c: Connection) -> str:
    return f"conn {c.number} ({c.client.endpoint} → {c.server.endpoint})"


def states_differ(c: Connection, client: Sequence[str] | None,
                  server: Sequence[str] | None) -> str:
    """The sides whose states are not the expected ones, side by side, and the ladder."""
    lines: list[str] = []
    for who, expected in (("client", client), ("server", server)):
        if expected is None:
            continue
        actual = getattr(c, who).states
        if list(expected) != actual:
            lines.append(f"{_where(c)}: the {who}'s states are not the expected ones")
            lines.extend(side_by_side(list(expected), actual))
    return "\n".join(lines + ladders([c])) if lines else ""


def resets(capture: Capture) -> str:
    """Every RST segment: frame, who sent it, in which states."""
    lines: list[str] = []
    conns = []
    for c in capture.connections:
        rsts = [s for s in c.segments if s.annotation.seg.flags & RST]
        if not rsts:
            continue
        conns.append(c)
        for s in rsts:
            sender = "client" if s.direction == "c>s" else "server"
            lines.append(f"{_where(c)}: frame {s.frame}: the {sender} sent RST "
                         f"({s.event}; client {s.client_before}, server {s.server_before})"
                         + (f": {s.note}" if s.note else ""))
    if not lines:
        return ""
    return "\n".join([f"{len(lines)} RST segment(s), expected none:", *lines,
                      *ladders(conns)])


def _unclean_reasons(c: Connection) -> list[str]:
    reasons = []
    fins = {s.direction for s in c.segments if s.annotation.seg.flags & FIN}
    for who, direction in (("client", "c>s"), ("server", "s>c")):
        if direction not in fins:
            reasons.append(f"the {who} sent no FIN")
    if any(s.annotation.seg.flags & RST for s in c.segments):
        reasons.append("it was reset (RST)")
    for who in ("client", "server"):
        final = getattr(c, who).final
        if final == "CLOSE_WAIT":
            reasons.append(f"the {who} was left in CLOSE_WAIT: its program never called "
                           "close() after read() returned 0")
    return reasons


def unclean(capture: Capture) -> str:
    """The connections that did not end with a FIN from both sides, with the reasons."""
    lines: list[str] = []
    bad = []
    for c in capture.connections:
        reasons = _unclean_reasons(c)
        if reasons:
            bad.append(c)
            lines.append(f"{_where(c)}: {'; '.join(reasons)}; final states: client "
                         f"{c.client.final}, server {c.server.final}")
    if not bad:
        return ""
    head = (f"{len(bad)} of {len(capture.connections)} connection(s) did not close cleanly "
            "(a FIN from both sides, nobody left in CLOSE_WAIT):")
    return "\n".join([head, *lines, *ladders(bad)])


def unwanted_findings(capture: Capture, rules: Sequence[str], severity: str | None) -> str:
    """The findings of ``rules`` (all when none are named) at ``severity`` or worse."""
    if severity is not None and severity not in SEVERITY_ORDER:
        raise ValueError(f"severity {severity!r}: choose from {', '.join(SEVERITY_ORDER)}")
    worst = SEVERITY_ORDER.index(severity) if severity else len(SEVERITY_ORDER)
    found = [f for f in capture.findings
             if (not rules or f.rule in rules)
             and SEVERITY_ORDER.index(f.severity) <= worst]
    if not found:
        return ""
    lines = [f"{len(found)} finding(s), expected none:"]
    for f in found:
        where = f"conn {f.conn}" if f.conn is not None else "process"
        lines.append(f"  [{f.severity}] {f.rule} ({where}, frames "
                     f"{', '.join(map(str, f.frames)) or '-'}): {f.what}")
        lines.append(f"      fix: {f.fix}")
    conns = [c for c in capture.connections if any(f.conn == c.number for f in found)]
    return "\n".join(lines + ladders(conns))


def missing_finding(capture: Capture, rule: str, conn: int | None) -> str:
    """"" when a finding of ``rule`` (on ``conn``) is there; else what was found instead."""
    found = capture.findings
    if any(f.rule == rule and (conn is None or f.conn == conn) for f in found):
        return ""
    where = f" on conn {conn}" if conn is not None else ""
    others = ", ".join(f"{f.rule} (conn {f.conn})" for f in found) or "none"
    conns = [c for c in capture.connections if conn is None or c.number == conn]
    return "\n".join([f"expected a finding {rule!r}{where}; found: {others}",
                      *ladders(conns)])
