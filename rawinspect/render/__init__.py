"""Output formats. Each renderer only formats Annotations; one module per format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TextIO

from ..core.annotation import Annotation


class Renderer(Protocol):
    """Writes annotations as they become final, then closes."""

    def write(self, anns: list[Annotation]) -> None: ...

    def flush(self) -> None:
        """Push everything written so far to the stream (live capture)."""

    def close(self) -> None: ...


@dataclass
class RenderOptions:
    """How to draw: colour, plain ASCII, width in columns, and a file for pictures."""
    color: bool = False
    ascii: bool = False
    width: int = 80
    output: str | None = None


def make_renderer(name: str, out: TextIO, opts: RenderOptions) -> Renderer:
    """The renderer for format ``name`` (one of FORMATS)."""
    if name == "jsonl":
        from .jsonl import JsonlRenderer
        return JsonlRenderer(out)
    if name == "ladder":
        from .ladder import LadderRenderer
        return LadderRenderer(out, opts.color, opts.ascii, opts.width)
    if name == "mermaid":
        from .mermaid import MermaidRenderer
        return MermaidRenderer(out)
    if name == "svg":
        from .svg import SvgRenderer
        return SvgRenderer(opts.output or "rawinspect.svg")
    from .table import TableRenderer
    return TableRenderer(out, opts.color)


FORMATS = ("table", "jsonl", "ladder", "mermaid", "svg")
