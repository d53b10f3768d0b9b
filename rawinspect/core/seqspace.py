"""32-bit sequence-number arithmetic (RFC 793 §3.3, RFC 1982): the one copy every stage uses."""

from __future__ import annotations

from typing import Final

MASK: Final = 0xFFFFFFFF
HALF: Final = 0x7FFFFFFF


def seq_lt(a: int, b: int) -> bool:
    """a comes before b in 32-bit sequence space."""
    return ((a - b) & MASK) > HALF


def seq_delta(a: int, b: int) -> int:
    """a - b as a signed 32-bit sequence difference."""
    d = (a - b) & MASK
    return d - 0x100000000 if d > HALF else d


def seq_add(a: int, n: int) -> int:
    """a + n, wrapped to 32 bits."""
    return (a + n) & MASK
