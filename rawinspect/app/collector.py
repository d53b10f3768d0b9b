"""The cyclic garbage collector paused while packets are annotated, live or from a file.

Annotating makes no reference cycles worth collecting, but keeps hundreds of thousands of
long-lived objects (connections, their summaries and facts) that the collector would walk
over and over: on the segments' hot path, and at the end, where the summaries and findings
are made (a fifth of the time of ``--conns`` and zeek, at the same peak memory when it is
paused). Reference counting frees everything as before.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic collector off for the block, then as it was (nested blocks too)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
