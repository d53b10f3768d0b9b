"""Items kept in key order, on disk once there are many: an external merge sort.

What the end of a run prints of every connection (the summaries and findings of the
connections the tracker retired, Zeek's rows to sort by time) would otherwise grow with the
capture. Up to ``LIMIT`` items wait in memory; then they are sorted and written, pickled
in blocks, as one run of a temporary file (unlinked at once: nothing is left behind).
``items`` merges the runs and what is still in memory, reading each run a block at a time.
"""

from __future__ import annotations

import heapq
import pickle
import tempfile
from operator import itemgetter
from typing import IO, Any, Generic, Iterable, Iterator, TypeVar

T = TypeVar("T")
U = TypeVar("U")
_key = itemgetter(0)
LIMIT = 8192   # items kept in memory before they are written as a run
BLOCK = 128    # items pickled together: what a run holds in memory while merged


class SortedSpill(Generic[T]):
    """``(key, item)`` pairs added in any order, read back in key order (keys unique)."""

    def __init__(self, limit: int | None = None, block: int | None = None) -> None:
        self.limit = limit or LIMIT
        self.block = block or BLOCK
        self.memory: list[tuple[Any, T]] = []
        self.runs: list[tuple[int, int]] = []   # each run's offset and its count of blocks
        self.file: IO[bytes] | None = None
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def add(self, key: Any, item: T) -> None:
        """Keep ``item`` under ``key``."""
        self.memory.append((key, item))
        self.count += 1
        if len(self.memory) >= self.limit:
            self._spill()

    def items(self) -> Iterable[tuple[Any, T]]:
        """Every pair, in key order (each call reads the runs again)."""
        self.memory.sort(key=_key)
        if not self.runs:
            return iter(list(self.memory))
        runs = [self._read(offset, blocks) for offset, blocks in self.runs]
        return heapq.merge(list(self.memory), *runs, key=_key)

    def merged(self, pairs: Iterable[tuple[Any, U]]) -> Iterable[tuple[Any, T | U]]:
        """``items`` merged with other ``(key, item)`` pairs (in key order, none of their
        keys kept here)."""
        return heapq.merge(pairs, self.items(), key=_key)

    def among(self, keys: Iterable[Any]) -> Iterable[tuple[Any, T | None]]:
        """``merged`` with ``keys`` (in order), each as ``(key, None)``. Made here, not by
        a compiled caller: mypyc miscompiles a comprehension of ``(int, None)`` pairs."""
        return self.merged((k, None) for k in keys)

    def close(self) -> None:
        """Drop the temporary file (the process's end drops it too)."""
        if self.file is not None:
            self.file.close()
            self.file = None

    def _spill(self) -> None:
        """Write what is in memory as one sorted run."""
        if self.file is None:
            self.file = tempfile.TemporaryFile(prefix="rawinspect-")
        f = self.file
        self.memory.sort(key=_key)
        offset = f.seek(0, 2)
        self.runs.append((offset, write_blocks(f, self.memory, self.block)))
        self.memory = []

    def _read(self, offset: int, blocks: int) -> Iterator[tuple[Any, T]]:
        """One run's pairs, a block at a time."""
        f = self.file
        assert f is not None
        for _ in range(blocks):
            f.seek(offset)
            chunk: list[tuple[Any, T]] = pickle.load(f)
            offset = f.tell()
            yield from chunk


def write_blocks(f: IO[bytes], items: Iterable[T], size: int) -> int:
    """``items`` pickled to ``f``, ``size`` to a block; how many blocks."""
    blocks, block = 0, []
    for item in items:
        block.append(item)
        if len(block) == size:
            pickle.dump(block, f, protocol=pickle.HIGHEST_PROTOCOL)
            blocks, block = blocks + 1, []
    if block:
        pickle.dump(block, f, protocol=pickle.HIGHEST_PROTOCOL)
        blocks += 1
    return blocks


def read_blocks(f: IO[bytes]) -> Iterator[Any]:
    """The items of ``write_blocks``, read to the end of ``f`` a block at a time."""
    while True:
        try:
            block: list[Any] = pickle.load(f)
        except EOFError:
            return
        yield from block
