"""Compare what the tracker saw with what a scenario's lesson says must happen."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..views.steps import EndpointSteps
from .base import Check, Expect, Observed, Path, expansions
from .call_checks import sizes_text


def observe(anns: Iterable[Annotation]) -> list[Observed]:
    """Per connection, in order: each endpoint's state sequence and where it changed."""
    by_conn: dict[int, list[Annotation]] = defaultdict(list)
    for a in anns:
        by_conn[a.conn].append(a)
    out = []
    for conn in sorted(by_conn):
        seq = by_conn[conn]
        steps = EndpointSteps.of(seq)
        out.append(Observed(conn, tuple(s.state for s in steps.client),
                            tuple(s.state for s in steps.server),
                            tuple(a.seg.frame for a in seq), tuple(steps.client),
                            tuple(steps.server), tuple(f for a in seq for f in a.analysis),
                            tuple((a.seg.frame, a.from_client, a.rel_seq, a.seg.payload)
                                  for a in seq if a.seg.payload)))
    return out


@dataclass
class Verdict:
    """Every check of one run, and the frames that departed from the lesson."""
    checks: list[Check] = field(default_factory=list)
    deviating: list[int] = field(default_factory=list)
    matched: list[str] = field(default_factory=list)
    unchecked: int = 0  # call expectations not checked: the calls were not recorded

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def lines(self) -> list[str]:
        mark = {True: "ok  ", False: "FAIL", None: "    "}
        out = [f"{mark[c.ok]} {c.text}" for c in self.checks]
        if self.deviating:
            out.append("deviating segments: frames " + ", ".join(map(str, self.deviating)))
        if self.unchecked:
            out.append(f"{self.unchecked} expectations on the calls not checked: the calls "
                       "were not recorded (--no-calls, or no tracing without root)")
        judged = [c for c in self.checks if c.ok is not None]
        passed = sum(1 for c in judged if c.ok)
        out.append(f"{'every expectation held' if self.ok else 'EXPECTATIONS NOT MET'}: "
                   f"{passed} of {len(judged)} checks passed")
        return out


def _first_deviation(obs: Observed, who: str, want: tuple[str, ...]) -> int:
    """The frame at which an endpoint's sequence left every admitted expectation."""
    seq = obs.client_steps if who == "client" else obs.server_steps
    got = [s.state for s in seq]
    best = 0
    for exp in expansions(want):
        n = 0
        while n < min(len(exp), len(got)) and exp[n] == got[n]:
            n += 1
        best = max(best, n)
    return seq[best].frame if best < len(seq) else obs.frames[-1]


def _describe(seq: tuple[str, ...]) -> str:
    return " → ".join(f"[{s[:-1]}]" if s.endswith("?") else s for s in seq)


def matches(obs: Observed, path: Path) -> bool:
    """Whether a connection's sequences are admitted by ``path``."""
    return obs.client in expansions(path.client) and obs.server in expansions(path.server)


def _zeek_checks(expect: Expect, anns: list[Annotation]) -> list[Check]:
    """Each connection's Zeek conn_state and history against the lesson's."""
    from ..views.summary import Summaries
    summaries = Summaries()
    summaries.feed(anns)
    out = []
    for i, s in enumerate(summaries.results()):
        wanted = expect.zeek if expect.each is not None else expect.zeek[i:i + 1]
        ok = any(s.conn_state == state and re.fullmatch(hist, s.history)
                 for state, hist in wanted)
        out.append(Check(ok, f"conn {s.conn} Zeek: conn_state {s.conn_state}, history "
                             f"{s.history}" + ("" if ok else " (expected " + " or ".join(
                                 f"{st} {h}" for st, h in wanted) + ")")))
    return out


def _finding_checks(expect: Expect, anns: list[Annotation],
                    calls: list[Call] | None) -> list[Check]:
    """The findings the lesson must produce, and those it must not; one that needs the
    calls is not checked without them."""
    from ..views.findings import RULES, diagnose
    found = diagnose(anns, calls)
    rules = {f.rule for f in found}
    out = []
    for name in expect.findings:
        if name not in rules and calls is None and RULES[name].needs_calls:
            out.append(Check(None, f"finding {name}: not checked (needs the calls)"))
            continue
        where = sorted({f.conn for f in found if f.rule == name and f.conn is not None})
        out.append(Check(name in rules, f"finding {name}: " + (
            f"found (conn {', '.join(map(str, where))})" if where else "found"
            if name in rules else "NOT found")))
    for name in expect.no_findings:
        out.append(Check(name not in rules, f"no finding {name}: " + (
            "none, as expected" if name not in rules else "found, but must not be")))
    return out


def _datagram_check(want: list[int], datagrams: list[Datagram]) -> Check:
    """The UDP datagrams on the wire: one per message, each its whole size."""
    got = [d.length for d in datagrams]
    ok = got == want
    return Check(ok, f"UDP: {len(got)} datagrams of {sizes_text(got)} bytes on the wire"
                 + ("" if ok else f" (expected {len(want)} of {sizes_text(want)})"))


def verify(expect: Expect, anns: list[Annotation], report: dict[str, Any],
           calls: list[Call] | None = None, datagrams: list[Datagram] | None = None
           ) -> Verdict:
    """Check the connections' state sequences, the programs' outcomes, the recorded calls
    (None: not recorded, their expectations are listed as not checked), the UDP
    datagrams and the extras."""
    v = Verdict()
    observed = observe(anns)
    if expect.each is not None:
        plan = [expect.each] * len(observed)
        if not observed:
            v.checks.append(Check(False, "no TCP connection seen"))
    else:
        plan = expect.conns
        if len(observed) != len(plan):
            v.checks.append(Check(False, f"expected {len(plan)} TCP connections, "
                                         f"saw {len(observed)}"))
    for obs, paths in zip(observed, plan):
        match = next((p for p in paths if matches(obs, p)), None)
        if match is not None:
            v.matched.append(match.label)
            v.checks.append(Check(True, f"conn {obs.conn} ({match.label}): client "
                                        f"{_describe(obs.client)}; server "
                                        f"{_describe(obs.server)}"))
            continue
        lesson: Path = paths[0]
        v.matched.append("")
        for who, got, want in (("client", obs.client, lesson.client),
                               ("server", obs.server, lesson.server)):
            if got not in expansions(want):
                frame = _first_deviation(obs, who, want)
                v.deviating.append(frame)
                v.checks.append(Check(False, f"conn {obs.conn} {who}: expected "
                                             f"{_describe(want)}; saw {_describe(got)} "
                                             f"(departs at frame {frame})"))
    if expect.required is not None:
        won = v.matched.count(expect.required)
        v.checks.append(Check(won > 0, f"{expect.required}: seen in {won} of "
                                       f"{len(observed)} connections"))
    outcomes = report.get("outcomes", {})
    for key, outcome in expect.outcomes.items():
        reported = outcomes.get(key, "not reported")
        v.checks.append(Check(reported == outcome, f"{key}: {reported}" + (
            "" if reported == outcome else f" (expected {outcome})")))
    if report.get("error"):
        v.checks.append(Check(False, f"the scenario's programs failed: {report['error']}"))
    if expect.zeek:
        v.checks.extend(_zeek_checks(expect, anns))
    for expectation in expect.calls:
        if calls is None:
            v.unchecked += 1
            v.checks.append(Check(None, f"calls: {expectation.text()}: not checked (calls "
                                        "not recorded)"))
        else:
            v.checks.extend(expectation.check(calls, anns))
    if expect.findings or expect.no_findings:
        v.checks.extend(_finding_checks(expect, anns, calls))
    if expect.datagrams:
        v.checks.append(_datagram_check(expect.datagrams, datagrams or []))
    if expect.extra is not None:
        v.checks.extend(expect.extra(observed, report))
    v.deviating.sort()
    return v
