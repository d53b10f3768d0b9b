"""The KernelEvent record: one TCP state change as the kernel's tracepoint reported it."""

from __future__ import annotations

from typing import NamedTuple


class KernelEvent(NamedTuple):
    """One traced state change (sock:inet_sock_set_state), on the packets' clock."""
    ts: float
    local: str
    remote: str
    old: str
    new: str
