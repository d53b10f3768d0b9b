"""The cyclic garbage collector's thresholds while a whole capture is annotated.

Replay keeps hundreds of thousands of long-lived objects (connections, their summaries
and facts), and the collector's default thresholds (700, 10, 10) walk them over and
over: a fifth of the time of ``--conns`` and zeek. With mypy's thresholds the collector
still runs, a few hundred times less often; reference counting frees the rest as before.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator

REPLAY_GC_THRESHOLDS = (200_000, 30, 30)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """The cyclic collector at REPLAY_GC_THRESHOLDS for the block."""
    before = gc.get_threshold()
    gc.set_threshold(*REPLAY_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
