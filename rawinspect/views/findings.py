"""Findings: the socket mistake a connection shows, its evidence, and the fix (pure).

Wireshark's Expert Information names protocol events; a finding names the line of the
program that is wrong. Each rule is a small documented function over one connection's
facts (``ConnFacts``), collected in one pass over the annotations and calls like the
summaries are: no rule keeps a connection's segments. ``Diagnoser`` feeds them and runs
the rules at the end; ``diagnose`` does both for a list. ``RULES`` lists the rules by
name, each rule's docstring its lesson (``rawinspect findings`` prints them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..core.annotation import Annotation
from ..core.call import Call

ERROR, WARNING, NOTE = "error", "warning", "note"
SEVERITIES = (ERROR, WARNING, NOTE)
CLOSE_WAIT_IDLE = 0.5   # seconds in CLOSE_WAIT, idle, before it counts as a leak


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what happened, the frames and calls that prove it, and the fix."""
    rule: str
    severity: str
    conn: int | None
    frames: tuple[int, ...]
    calls: tuple[str, ...]
    what: str
    fix: str
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The jsonl record: ``{"kind": "finding", ...}`` (empty fields left out)."""
        d: dict[str, Any] = {"kind": "finding", "rule": self.rule, "severity": self.severity,
                             "conn": self.conn, "frames": list(self.frames),
                             "calls": list(self.calls), "what": self.what, "fix": self.fix}
        if self.why:
            d["why"] = self.why
        return d


@dataclass
class ConnFacts:
    """What the rules read of one connection, collected in one pass."""
    conn: int
    client: str
    server: str
    first_ts: float
    last_ts: float = 0.0
    # side → [(state, ts, frame)] the states it entered, in order
    steps: dict[str, list[tuple[str, float, int]]] = field(default_factory=dict)
    fin: dict[str, tuple[int, float]] = field(default_factory=dict)    # first FIN per side
    last_data: dict[str, float] = field(default_factory=dict)          # last payload sent
    rst: list[tuple[int, float, str, str]] = field(default_factory=list)  # frame, ts, side, event
    calls: list[Call] = field(default_factory=list)

    def state_at_end(self, side: str) -> str:
        """The last state ``side`` entered."""
        return self.steps[side][-1][0]


@dataclass(frozen=True)
class Rule:
    """A named rule: ``check`` yields findings over one connection's facts."""
    name: str
    check: Callable[[ConnFacts, bool], Iterator[Finding]]
    needs_calls: bool = False

    @property
    def doc(self) -> str:
        """The rule's lesson: its check's docstring."""
        return " ".join((self.check.__doc__ or "").split())


def _calls_of(f: ConnFacts, side: str, *names: str) -> list[Call]:
    return [c for c in f.calls if c.side == side and c.name in names and c.phase != "entered"]


def close_wait_leak(f: ConnFacts, recorded: bool) -> Iterator[Finding]:
    """CLOSE_WAIT left open: the peer closed, and this side's program never called
    close() (read() returned 0 and it went on holding the socket). No timer ends
    CLOSE_WAIT: only close() or the process's exit does. Call close() when read()
    returns 0."""
    for side, peer in (("client", "server"), ("server", "client")):
        steps = f.steps.get(side, [])
        for i, (state, ts, frame) in enumerate(steps):
            if state != "CLOSE_WAIT":
                continue
            until = steps[i + 1][1] if i + 1 < len(steps) else f.last_ts
            idle_from = max(ts, f.last_data.get(side, 0.0))
            if until - idle_from < CLOSE_WAIT_IDLE:
                continue
            still = i + 1 == len(steps)
            eof = [c for c in _calls_of(f, side, "read", "recv", "recvfrom", "recvmsg")
                   if c.ret == 0]
            how = (f"the {side} never called close() after {eof[0].name}() returned 0"
                   if eof else f"the {side} did not close after the {peer}'s FIN")
            held = "and still held it at the end" if still else f"for {until - ts:.1f} s"
            yield Finding(
                "close-wait-leak", WARNING, f.conn, (frame,),
                tuple(c.text() for c in eof[:1]),
                f"{how} at frame {frame}: its socket sat in CLOSE_WAIT {held}"
                + ("" if recorded else " (calls not recorded: from the wire only)") + ".",
                "Call close() when read() returns 0.",
                "CLOSE_WAIT ends only when the program closes; the kernel has no timer for it.")


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("close-wait-leak", close_wait_leak),
)}


class Diagnoser:
    """Collects the facts of each connection, one annotation or call at a time."""

    def __init__(self) -> None:
        self.facts: dict[int, ConnFacts] = {}
        self.recorded = False

    def feed(self, anns: list[Annotation]) -> None:
        """The next annotations of the run, in capture order."""
        for a in anns:
            f = self.facts.get(a.conn)
            if f is None:
                f = self.facts[a.conn] = ConnFacts(a.conn, a.client, a.server, a.seg.ts)
                f.steps["client"] = [(a.client_before, a.seg.ts, a.seg.frame)]
                f.steps["server"] = [(a.server_before, a.seg.ts, a.seg.frame)]
            f.last_ts = a.seg.ts
            side = "client" if a.from_client else "server"
            if a.seg.payload:
                f.last_data[side] = a.seg.ts
            for who, path in (("client", a.client_path), ("server", a.server_path)):
                if path:
                    steps = f.steps[who]
                    for state in path:
                        if state != steps[-1][0]:
                            steps.append((state, a.seg.ts, a.seg.frame))

    def feed_calls(self, calls: list[Call]) -> None:
        """The programs' calls, linked to connections by the calls view."""
        self.recorded = True
        for c in calls:
            if c.conn is not None and c.conn in self.facts:
                self.facts[c.conn].calls.append(c)

    def results(self) -> list[Finding]:
        """Every rule over every connection, in connection order."""
        out: list[Finding] = []
        for _, f in sorted(self.facts.items()):
            for rule in RULES.values():
                out.extend(rule.check(f, self.recorded))
        return out


def diagnose(anns: list[Annotation], calls: list[Call] | None = None,
             left_behind: list[dict[str, Any]] | None = None) -> list[Finding]:
    """Every finding over finished connections' timelines; calls None = not recorded."""
    d = Diagnoser()
    d.feed(anns)
    if calls is not None:
        d.feed_calls(calls)
    return d.results()
