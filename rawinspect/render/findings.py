"""Findings as text (a section per connection, after the segments), as JSON lines, and
the list of rules that ``rawinspect findings`` prints."""

from __future__ import annotations

import json
import textwrap
from itertools import groupby
from typing import Iterable, TextIO

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


def findings_text(out: TextIO, findings: Iterable[Finding], recorded: bool, width: int = 80,
                  blank: bool = True) -> None:
    """The findings section: a heading per connection (and one for the processes), and
    which rules went unchecked without the calls; nothing when there is nothing to say.
    ``blank``: a blank line before it (after the segments)."""
    said = False
    for conn, group in groupby(findings, key=lambda f: f.conn):
        if blank and not said:
            out.write("\n")
        said = True
        out.write(f"findings, conn {conn}:\n" if conn is not None else "findings, processes:\n")
        for f in group:
            out.writelines(line + "\n" for line in finding_lines(f, width))
    if not said:
        return
    skipped = unchecked(recorded)
    if skipped:
        out.writelines(line + "\n" for line in textwrap.wrap(
            f"  (not checked without the programs' calls: {', '.join(skipped)})",
            max(width, 40), subsequent_indent="   "))


def findings_jsonl(out: TextIO, findings: Iterable[Finding]) -> None:
    """One ``{"kind": "finding", ...}`` object per line."""
    out.writelines(json.dumps(f.as_dict()) + "\n" for f in findings)


def by_conn(findings: Iterable[Finding]) -> dict[int, list[str]]:
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
