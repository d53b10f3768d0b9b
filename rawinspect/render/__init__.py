"""Output formats. Each renderer only formats Annotations; one module per format."""

from __future__ import annotations

from typing import Protocol, TextIO

from ..annotation import Annotation


class Renderer(Protocol):
    """Writes annotations as they become final, then closes."""

    def write(self, anns: list[Annotation]) -> None: ...

    def flush(self) -> None:
        """Push everything written so far to the stream (live capture)."""

    def close(self) -> None: ...


def make_renderer(name: str, out: TextIO, color: bool) -> Renderer:
    """The renderer for format ``name`` ("table" or "jsonl")."""
    if name == "jsonl":
        from .jsonl import JsonlRenderer
        return JsonlRenderer(out)
    from .table import TableRenderer
    return TableRenderer(out, color)


FORMATS = ("table", "jsonl")
