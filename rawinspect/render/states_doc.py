"""Text forms of the transition table: the ``states`` command and the README diagram."""

from __future__ import annotations

from tabulate import tabulate

from ..core.transitions import STATES, TRANSITIONS


def states_table() -> str:
    """Every rule as a table: state, event, next state, why."""
    rows = [(t.state, t.event, t.new, t.why) for t in TRANSITIONS]
    return tabulate(rows, headers=("State", "Event", "Next state", "Why"), tablefmt="simple")


def states_mermaid() -> str:
    """A Mermaid state diagram of every rule that changes the state."""
    lines = ["stateDiagram-v2", "    [*] --> CLOSED", "    [*] --> LISTEN"]
    seen: dict[tuple[str, str], list[str]] = {}
    for t in TRANSITIONS:
        if t.state != t.new:
            seen.setdefault((t.state, t.new), []).append(t.event)
    order = {s: i for i, s in enumerate(STATES)}
    for (a, b), events in sorted(seen.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])):
        lines.append(f"    {a} --> {b}: {' / '.join(events)}")
    return "\n".join(lines)
