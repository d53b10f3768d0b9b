"""What a scenario expects, as text: ``rawinspect scenarios NAME`` prints it."""

from __future__ import annotations

from .base import Expect, Path
from .call_checks import sizes_text


def expectations(expect: Expect) -> list[str]:
    """What a scenario checks: each endpoint's states per connection, Zeek's summary, the
    outcomes of the calls (errnos) as reported and as recorded, and any further check."""
    lines = ["Expected states, per connection:" if expect.each is None else
             "Expected states: any number of connections, each one of:"]
    if expect.each is None:
        for i, paths in enumerate(expect.conns, 1):
            zeek = expect.zeek[i - 1] if i <= len(expect.zeek) else None
            lines.append(f"  conn {i}" + (f" (Zeek {zeek[0]}, history {zeek[1]})" if zeek
                                          else "") + ":")
            lines += _paths(paths, "    ")
    else:
        lines += _paths(expect.each, "  ")
        lines += [f"  Zeek: {state}, history {history}" for state, history in expect.zeek]
        if expect.required:
            lines.append(f"  at least one: {expect.required}")
    if any("?" in line for line in lines):
        lines.append("  (STATE?: optional, the capture may or may not show it)")
    if expect.outcomes:
        lines.append("Calls and their outcomes (errno), as the programs report them:")
        lines += [f"  {key}: {value}" for key, value in expect.outcomes.items()]
    if expect.calls:
        lines.append("Calls the kernel must record the programs making (with `capture`, "
                     "as root):")
        lines += [f"  {want.text()}" for want in expect.calls]
    if expect.datagrams:
        lines.append(f"UDP datagrams on the wire: {len(expect.datagrams)}, of "
                     f"{sizes_text(expect.datagrams)} bytes, one per message")
    found = ([f"must find {', '.join(expect.findings)}"] if expect.findings else []) + (
        [f"must not find {', '.join(expect.no_findings)}"] if expect.no_findings else [])
    if found:
        lines.append(f"Findings (`rawinspect findings RULE`): {'; '.join(found)}")
    if expect.extra is not None:
        doc = (expect.extra.__doc__ or "").strip().splitlines()
        lines.append("Also checked: " + (doc[0] if doc else
                                          expect.extra.__name__.replace("_", " ")))
    return lines


def _paths(paths: list[Path], indent: str) -> list[str]:
    """Each acceptable path: its label, then the client's and the server's states."""
    lines = []
    for n, p in enumerate(paths):
        lines.append(f"{indent}{'or ' if n else ''}{p.label}:")
        lines.append(f"{indent}  client: {' → '.join(p.client)}")
        lines.append(f"{indent}  server: {' → '.join(p.server)}")
    return lines
