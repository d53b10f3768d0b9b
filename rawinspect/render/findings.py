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


INDENT = "      "   # a finding's lines after its first


def finding_lines(f: Finding, width: int = 80) -> list[str]:
    """One finding: severity and rule, what happened, the evidence, the fix."""
    width = max(width, 40)
    out = wrapped(f"  {f.severity.upper()} {f.rule}: {f.what}", width, INDENT)
    evidence = _evidence(f)
    if evidence:
        out += wrapped(f"    evidence: {evidence}", width, INDENT)
    out += wrapped(f"    fix: {f.fix}", width, INDENT)
    return out


def wrapped(text: str, width: int, indent: str) -> list[str]:
    """``textwrap.wrap(text, width, subsequent_indent=indent)``, in a third of the time for
    the usual text: after its leading spaces, words one space apart, with no other blank,
    each fitting on a line of its own. Any other text goes to textwrap.

    textwrap's own splitting (one regular expression over the whole text) is most of its
    time; here only a word with a hyphen goes through that expression, and the chunks are
    filled into lines as textwrap fills them (a space that ends a line is dropped)."""
    body = text.lstrip(" ")
    lead = text[:len(text) - len(body)]
    words = body.split(" ")
    if (not body or "" in words or max(map(len, words)) > width - max(len(lead), len(indent))
            or any(c in body for c in "\t\n\r\x0b\x0c")):
        return textwrap.wrap(text, width, subsequent_indent=indent)
    chunks = [lead] if lead else []
    for i, word in enumerate(words):
        if i:
            chunks.append(" ")
        if "-" in word:
            chunks.extend(c for c in _WORDSEP.split(word) if c)
        else:
            chunks.append(word)
    return _filled(chunks, width, indent)


_WORDSEP = textwrap.TextWrapper.wordsep_re


def _filled(chunks: list[str], width: int, indent: str) -> list[str]:
    """Chunks (none longer than a line) as lines, as ``TextWrapper._wrap_chunks`` fills
    them: as many as fit; a space that ends a line, or starts one after the first, is
    dropped."""
    lines: list[str] = []
    line: list[str] = []
    size, room, prefix = 0, width, ""
    for chunk in chunks:
        if size + len(chunk) > room:
            if line[-1] == " ":
                line.pop()
            lines.append(prefix + "".join(line))
            line, size, room, prefix = [], 0, width - len(indent), indent
            if chunk == " ":
                continue
        line.append(chunk)
        size += len(chunk)
    if line[-1] == " ":
        line.pop()
    lines.append(prefix + "".join(line))
    return lines


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
