"""Output formats. Each renderer only formats Annotations, Calls and Datagrams; one module
per format.

``FORMATS`` is the registry: adding a format is one entry there. The command line takes
its ``--format`` choices and help from it, and ``make_renderer`` its factories.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import groupby
from typing import TYPE_CHECKING, Callable, Iterable, Literal, Protocol, Sequence, TextIO, Union, cast

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram

if TYPE_CHECKING:
    from ..views.summary import ConnSummary
    from ..views.udp_flows import UdpFlow


class Renderer(Protocol):
    """Writes annotations as they become final, then closes.

    ``write`` and ``write_calls`` are called alternately in time order: a batch of calls
    falls between the segments written before and after it. A call's ``conn`` may be None
    (a failed bind(), a signal, an exit).
    """

    def write(self, anns: list[Annotation]) -> None: ...

    def write_calls(self, calls: list[Call]) -> None:
        """The traced programs' calls, signals and exits since the last segments."""

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """UDP datagrams, in frame order between the segments around them."""

    def flush(self) -> None:
        """Push everything written so far to the stream (live capture)."""

    def close(self) -> None: ...


@dataclass
class RenderOptions:
    """How to draw: colour, plain ASCII, width in columns, a file for pictures, and the
    table's time (relative, absolute, delta or conn-delta)."""
    color: bool = False
    ascii: bool = False
    width: int = 80
    output: str | None = None
    time: str = "relative"
    verbose: bool = False    # the table: each row's scaled window and TCP options
    hex: bool = False        # the table's -X: headers field by field and payload bytes


SegmentFactory = Callable[[TextIO, RenderOptions], Renderer]
ConnFormatter = Callable[[TextIO, "Iterable[ConnSummary]", "Sequence[UdpFlow]"], None]


@dataclass(frozen=True)
class Format:
    """One output format.

    ``segments`` renders the annotations as they come (a per-segment format); ``conns``
    formats the connection summaries (``--conns``). A format with only ``conns`` is
    per-connection and implies summaries. ``stream`` is where it writes: stdout, or the
    file given by ``-o`` (then ``-o`` is required).
    """
    name: str
    help: str
    segments: SegmentFactory | None = None
    conns: ConnFormatter | None = None
    stream: Literal["stdout", "file"] = "stdout"

    @property
    def per_connection(self) -> bool:
        """Connection summaries only: no per-segment output."""
        return self.segments is None


def _table(out: TextIO, opts: RenderOptions) -> Renderer:
    from .table import TableRenderer
    hexview = None
    if opts.hex:
        from .hexdump import HexView
        hexview = HexView()
    return TableRenderer(out, opts.color, opts.width, opts.time, opts.verbose, hexview)


def _jsonl(out: TextIO, opts: RenderOptions) -> Renderer:
    from .jsonl import JsonlRenderer
    return JsonlRenderer(out)


def _ladder(out: TextIO, opts: RenderOptions) -> Renderer:
    from .ladder import LadderRenderer
    return LadderRenderer(out, opts.color, opts.ascii, opts.width)


def _mermaid(out: TextIO, opts: RenderOptions) -> Renderer:
    from .mermaid import MermaidRenderer
    return MermaidRenderer(out)


def _svg(out: TextIO, opts: RenderOptions) -> Renderer:
    from .svg import SvgRenderer
    return SvgRenderer(opts.output or "rawinspect.svg")


def _html(out: TextIO, opts: RenderOptions) -> Renderer:
    from .html import HtmlRenderer
    return HtmlRenderer(opts.output or "rawinspect.html")


def _conns_table(out: TextIO, summaries: Iterable[ConnSummary],
                 udp: Sequence[UdpFlow] = ()) -> None:
    from .summaries import table
    table(out, summaries, udp=udp)


def _conns_jsonl(out: TextIO, summaries: Iterable[ConnSummary],
                 udp: Sequence[UdpFlow] = ()) -> None:
    from .summaries import jsonl
    jsonl(out, summaries, udp=udp)


def _conns_zeek(out: TextIO, summaries: Iterable[ConnSummary],
                udp: Sequence[UdpFlow] = ()) -> None:
    from .summaries import zeek
    zeek(out, summaries, udp)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("table", "one row per segment (default)", _table, _conns_table),
    Format("jsonl", "one JSON object per segment", _jsonl, _conns_jsonl),
    Format("ladder", "a ladder diagram", _ladder),
    Format("mermaid", "a Mermaid sequence diagram per connection", _mermaid),
    Format("svg", "a picture per connection (-o FILE.svg)", _svg, stream="file"),
    Format("html", "one self-contained page: connections, ladders, bytes (-o FILE.html)",
           _html, stream="file"),
    Format("zeek", "connection summaries as Zeek's conn.log (implies --conns)",
           conns=_conns_zeek),
)}
DEFAULT_FORMAT = "table"


def formats_help() -> str:
    """The ``--format`` help: every format and what it gives."""
    return "; ".join(f"{f.name}: {f.help}" for f in FORMATS.values())


Row = Union[Annotation, Call, Datagram]   # a row of a timeline


def write_rows(renderer: Renderer, rows: Iterable[Row]) -> None:
    """A timeline's rows, in their order, each run of one kind in one call of the
    renderer's method for that kind."""
    for kind, run in groupby(rows, key=type):
        if kind is Annotation:
            renderer.write(cast(list[Annotation], list(run)))
        elif kind is Call:
            renderer.write_calls(cast(list[Call], list(run)))
        else:
            renderer.write_datagrams(cast(list[Datagram], list(run)))


def make_renderer(name: str, out: TextIO, opts: RenderOptions) -> Renderer:
    """The per-segment renderer for format ``name``."""
    factory = FORMATS[name].segments
    if factory is None:
        raise ValueError(f"{name} is a per-connection format")
    return factory(out, opts)


def conns_formatter(name: str) -> ConnFormatter:
    """How format ``name`` prints connection summaries: its own way, else as a table."""
    return FORMATS[name].conns or _conns_table
