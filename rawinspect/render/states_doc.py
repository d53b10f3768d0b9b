"""Text forms of the transition table: the ``states`` command and the README diagram."""

from __future__ import annotations

from tabulate import tabulate

from ..core.transitions import CORRECTIONS, EVENTS, STATES, TRANSITIONS


def states_table() -> str:
    """Every rule as a table (state, event, next state, why), then the events it knows."""
    rows = [(t.state, t.event, t.new, t.why) for t in TRANSITIONS]
    table = tabulate(rows, headers=("State", "Event", "Next state", "Why"), tablefmt="simple")
    changes = [e for e in EVENTS if e not in CORRECTIONS]
    return (f"{table}\n\nEvents, seen from the endpoint whose state changes: "
            f"{', '.join(changes)}.\nCorrections (an assumed first state was wrong; shown "
            f"as the state before, not as a change): {', '.join(CORRECTIONS)}.")


def states_mermaid() -> str:
    """A Mermaid state diagram of every rule that changes the state."""
    lines = ["stateDiagram-v2", "    [*] --> CLOSED", "    [*] --> LISTEN"]
    seen: dict[tuple[str, str], list[str]] = {}
    for t in TRANSITIONS:
        if t.state != t.new and t.event not in CORRECTIONS:
            seen.setdefault((t.state, t.new), []).append(t.event)
    order = {s: i for i, s in enumerate(STATES)}
    for (a, b), events in sorted(seen.items(), key=lambda kv: (order[kv[0][0]], order[kv[0][1]])):
        lines.append(f"    {a} --> {b}: {' / '.join(events)}")
    return "\n".join(lines)
