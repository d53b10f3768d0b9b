"""Findings as text (a section per connection, after the segments), as JSON lines, and
the list of rules that ``rawinspect findings`` prints."""

from __future__ import annotations

import json
import textwrap
from itertools import groupby

from ..views.findings import RULES, Finding, unchecked


def _evidence(f: Finding) -> str:
    frames = ("frames " + ", ".join(map(str, f.frames))) if len(f.frames) > 1 else (
        f"frame {f.frames[0]}" if f.frames else "")
    return "; ".join(p for p in (frames, *f.calls) if p)


def finding_lines(f: Finding, width: int = 80) -> list[str]:
    """One finding: severity and rule, what happened, the evidence, the fix."""
    wrap = textwrap.TextWrapper(width=max(width, 40), subsequent_indent="      ")
    out = wrap.wrap(f"  {f.severity.upper()} {f.rule}: {f.what}")
    evidence = _evidence(f)
    if evidence:
        out += wrap.wrap(f"    evidence: {evidence}")
    out += wrap.wrap(f"    fix: {f.fix}")
    return out


def findings_text(findings: list[Finding], recorded: bool, width: int = 80) -> str:
    """The findings section: a heading per connection (and one for the processes), and
    which rules went unchecked without the calls; "" when there is nothing to say."""
    lines: list[str] = []
    for conn, group in groupby(findings, key=lambda f: f.conn):
        lines.append(f"findings, conn {conn}:" if conn is not None else "findings, processes:")
        for f in group:
            lines.extend(finding_lines(f, width))
    if findings:
        lines.insert(0, "")
    skipped = unchecked(recorded)
    if skipped and findings:
        lines.extend(textwrap.wrap(f"  (not checked without the programs' calls: "
                                   f"{', '.join(skipped)})", max(width, 40),
                                   subsequent_indent="   "))
    return "\n".join(lines) + ("\n" if lines else "")


def findings_jsonl(findings: list[Finding]) -> str:
    """One ``{"kind": "finding", ...}`` object per line."""
    return "".join(json.dumps(f.as_dict()) + "\n" for f in findings)


def by_conn(findings: list[Finding]) -> dict[int, list[str]]:
    """The rule names found on each connection (for the --conns rows)."""
    out: dict[int, list[str]] = {}
    for f in findings:
        if f.conn is not None:
            out.setdefault(f.conn, []).append(f.rule)
    return out


def rules_text(only: str | None = None) -> str:
    """Every rule (or the one named ``only``): its name, severity, whether it needs the
    calls, and its lesson."""
    lines = []
    for rule in RULES.values():
        if only is not None and rule.name != only:
            continue
        needs = ", needs the calls" if rule.needs_calls else ""
        lines.append(f"{rule.name} ({rule.severity}{needs})")
        lines.extend(textwrap.wrap(rule.doc, 78, initial_indent="    ",
                                   subsequent_indent="    "))
    return "\n".join(lines) + "\n"
