"""What the Python API hands back: a Capture, its Connections, their Endpoints and Segments.

A ``Capture`` holds the final annotations and the programs' calls in time order, as the
command line's renderers receive them; everything else (connections, summaries, findings,
pictures) is read from them on demand, by the same views and renderers the command line
uses. The attribute names of an ``AnnotatedSegment`` are the keys of ``--format jsonl``.
"""

from __future__ import annotations

import io
import json
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence, Union

from ..app.pipeline import Stats
from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..core.options import options_json
from ..core.segment import FLAG_LETTERS, RST
from ..core.tracker import DEFAULT_MSL
from ..render import RenderOptions, make_renderer, write_rows
from ..render.summaries import split_endpoint
from .saving import Packets
from ..views.steps import EndpointSteps, Step
from ..views.summary import ConnSummary, Summaries

if TYPE_CHECKING:
    from ..views.findings import Finding

ConnEvent = Union[Annotation, Call]      # what a connection has
Event = Union[Annotation, Call, Datagram]
HTML_CONNECTIONS = 20  # pictures shown inline in a notebook; the rest are counted


class AnnotatedSegment:
    """One TCP segment and what it did to both endpoints; attribute names are the jsonl keys.

    ``annotation`` is the core record (``rawinspect.core.annotation.Annotation``) behind it.
    """

    __slots__ = ("annotation",)

    def __init__(self, annotation: Annotation) -> None:
        self.annotation = annotation

    @property
    def frame(self) -> int:
        """Frame number in the capture, from 1."""
        return self.annotation.seg.frame

    @property
    def ts(self) -> float:
        """Capture time, seconds since the epoch."""
        return self.annotation.seg.ts

    @property
    def conn(self) -> int:
        """Connection number, from 1."""
        return self.annotation.conn

    @property
    def client(self) -> str:
        """The client, "ip:port"."""
        return self.annotation.client

    @property
    def server(self) -> str:
        """The server, "ip:port"."""
        return self.annotation.server

    @property
    def direction(self) -> str:
        """"c>s" (client to server) or "s>c"."""
        return self.annotation.direction

    @property
    def flags(self) -> str:
        """tcpdump's flag letters: "S", "S.", "F.", "R", "P."."""
        return FLAG_LETTERS[self.annotation.seg.flags & 0x1FF]

    @property
    def seq(self) -> int:
        """Sequence number as sent."""
        return self.annotation.seg.seq

    @property
    def ack(self) -> int:
        """Acknowledgment number as sent."""
        return self.annotation.seg.ack

    @property
    def rel_seq(self) -> int:
        """Sequence number relative to the sender's first."""
        return self.annotation.rel_seq

    @property
    def rel_ack(self) -> int:
        """Acknowledgment number relative to the receiver's first."""
        return self.annotation.rel_ack

    @property
    def len(self) -> int:
        """Payload bytes."""
        return self.annotation.seg.payload

    @property
    def win(self) -> int:
        """The window field as sent."""
        return self.annotation.seg.window

    @property
    def client_before(self) -> str:
        """The client's state before this segment."""
        return self.annotation.client_before

    @property
    def client_after(self) -> str:
        """The client's state after it."""
        return self.annotation.client_after

    @property
    def server_before(self) -> str:
        """The server's state before this segment."""
        return self.annotation.server_before

    @property
    def server_after(self) -> str:
        """The server's state after it."""
        return self.annotation.server_after

    @property
    def client_path(self) -> list[str] | None:
        """Every state the client passed through on this segment, or None."""
        return self.annotation.client_path or None

    @property
    def server_path(self) -> list[str] | None:
        """Every state the server passed through on this segment, or None."""
        return self.annotation.server_path or None

    @property
    def event(self) -> str:
        """What the segment is: SYN, SYN+ACK, FIN, RST, data, ACK..."""
        return self.annotation.event

    @property
    def analysis(self) -> list[str]:
        """Analysis flags: "retransmission", "keep_alive"..."""
        return list(self.annotation.analysis)

    @property
    def note(self) -> str:
        """Why the states changed, in one line."""
        return self.annotation.note

    @property
    def win_scaled(self) -> int:
        """The window as the receiver reads it (scaled)."""
        return self.annotation.win_scaled

    @property
    def cause(self) -> str:
        """The program's call that made the sender's state change ("" when none)."""
        return self.annotation.cause

    @property
    def options(self) -> dict[str, Any]:
        """The TCP options, as in jsonl."""
        a = self.annotation
        raw = a.seg.raw_opts
        return dict(json.loads(options_json(raw, a.seg.ack, a.rel_ack))) if raw else {}

    def as_dict(self) -> dict[str, Any]:
        """The jsonl record of this segment (``rawinspect replay -T jsonl``), as a dict."""
        return dict(json.loads(_render("jsonl", [self.annotation], RenderOptions())))

    def __repr__(self) -> str:
        return (f"<segment {self.frame} conn {self.conn} {self.direction} {self.flags} "
                f"{self.event}: client {self.client_after}, server {self.server_after}>")


class Endpoint:
    """One side of a connection: where it is and the states it went through."""

    def __init__(self, role: str, address_port: str, steps: list[Step],
                 summary: ConnSummary) -> None:
        self.role = role  # "client" or "server"
        self.endpoint = address_port  # "ip:port" ("[ip]:port" for IPv6)
        host, port = split_endpoint(address_port)
        self.address, self.port = host, int(port)
        self.steps = steps  # each state, when and on which frame it was entered
        self._summary = summary

    @property
    def states(self) -> list[str]:
        """The states in order, the one before the first segment included."""
        return [s.state for s in self.steps]

    @property
    def final(self) -> str:
        """The last state seen."""
        return self.steps[-1].state

    def state_at(self, time: float | None = None, frame: int | None = None) -> str:
        """The state at ``time`` (seconds since the epoch), or just after ``frame``."""
        if (time is None) == (frame is None):
            raise TypeError("state_at: give time= or frame=, one of them")
        state = self.steps[0].state
        for s in self.steps:
            if (s.ts > time) if time is not None else (s.frame > (frame or 0)):
                break
            state = s.state
        return state

    def time_in(self) -> dict[str, float]:
        """Seconds spent in each state, to the end of the capture (as ``--conns``)."""
        out: dict[str, float] = {}
        for held in self._summary.timing[self.role]:
            out[held.state] = out.get(held.state, 0.0) + held.seconds
        return out

    def __repr__(self) -> str:
        return f"<{self.role} {self.endpoint}: {' → '.join(self.states)}>"


class Connection:
    """One TCP connection: both endpoints, its segments, its calls, summary and findings."""

    def __init__(self, capture: Capture, number: int, events: list[ConnEvent],
                 summary: ConnSummary, steps: EndpointSteps) -> None:
        self.capture = capture
        self.number = number
        self.events = events  # its annotations and calls, in time order
        self.calls = [e for e in events if isinstance(e, Call)]
        self.summary = summary  # Zeek's conn_state and history, timing, who closed first
        self.client = Endpoint("client", summary.client, steps.client, summary)
        self.server = Endpoint("server", summary.server, steps.server, summary)

    @cached_property
    def segments(self) -> list[AnnotatedSegment]:
        """Its annotated segments, in frame order."""
        return [AnnotatedSegment(e) for e in self.events if isinstance(e, Annotation)]

    @property
    def conn_state(self) -> str:
        """Zeek's conn_state (SF, S0, REJ, RSTO...)."""
        return self.summary.conn_state

    @property
    def history(self) -> str:
        """Zeek's history letters (ShADadFf...)."""
        return self.summary.history

    @property
    def findings(self) -> list[Finding]:
        """The capture's findings about this connection."""
        return self.capture.findings_by_conn.get(self.number, [])

    def ladder(self, ascii: bool = True, width: int = 100, color: bool = False) -> str:
        """The connection's ladder diagram as text (``-T ladder``)."""
        return _render("ladder", self.events, RenderOptions(color, ascii, width))

    def svg(self) -> str:
        """The connection's SVG ladder, one document."""
        from ..render.svg import picture
        return picture(self.events)

    def assert_states(self, client: Sequence[str] | None = None,
                      server: Sequence[str] | None = None) -> None:
        """AssertionError unless each side given went through exactly these states (the
        first one is its state before the first segment: CLOSED or LISTEN)."""
        __tracebackhide__ = True
        from .assertions import states_differ
        message = states_differ(self, client, server)
        if message:
            raise AssertionError(message)

    def __repr__(self) -> str:
        return (f"<connection {self.number} {self.client.endpoint} → "
                f"{self.server.endpoint} {self.conn_state} "
                f"client {self.client.final}, server {self.server.final}>")


class Capture:
    """The annotated segments and the programs' calls of a capture file, of packets, or of a
    live capture (complete once the capture has stopped: reading its results stops it).
    """

    def __init__(self, events: list[Event] | None = None, stats: Stats | None = None, *,
                 msl: float = DEFAULT_MSL, end: float | None = None,
                 packets: Packets | None = None,
                 left_behind: list[dict[str, Any]] | None = None,
                 pending: Callable[[], None] | None = None) -> None:
        self._events = events or []
        self.stats = stats or Stats()  # packets, segments, connections, what was skipped
        self.msl = msl
        self._end = end
        self._packets = packets
        self.left_behind = left_behind or []  # sockets the kernel still held at the end
        self._pending = pending
        self.error = ""  # read(partial=True): why the file could not be read to its end
        self._tmp: object = None  # a live capture's temporary folder, kept while it lives

    def _done(self, events: list[Event], stats: Stats, end: float, packets: Packets,
              left_behind: list[dict[str, Any]]) -> None:
        """A live capture has stopped: its results."""
        self._events, self.stats, self._end = events, stats, end
        self._packets, self.left_behind = packets, left_behind
        self._pending = None

    def stop(self) -> Capture:
        """End a live capture now (after its linger); nothing for the others."""
        if self._pending is not None:
            self._pending()
        return self

    @property
    def events(self) -> list[Event]:
        """Annotations and calls, in time order (each renderer's input)."""
        self.stop()
        return self._events

    @property
    def annotations(self) -> list[AnnotatedSegment]:
        """Every annotated segment, in frame order."""
        return [AnnotatedSegment(e) for e in self.events if isinstance(e, Annotation)]

    @property
    def calls(self) -> list[Call]:
        """The programs' calls, signals and exits (empty when none were recorded)."""
        return [e for e in self.events if isinstance(e, Call)]

    @property
    def datagrams(self) -> list[Datagram]:
        """The UDP datagrams (when the filter let them in), in frame order."""
        return [e for e in self.events if isinstance(e, Datagram)]

    @cached_property
    def connections(self) -> list[Connection]:
        """Every connection, in the order they started."""
        per: dict[int, list[ConnEvent]] = {}
        summaries = Summaries(2 * self.msl)
        anns = [e for e in self.events if isinstance(e, Annotation)]
        summaries.feed(anns)
        if self._end is not None:
            summaries.end = max(summaries.end, self._end)
        for e in self.events:
            if not isinstance(e, Datagram) and e.conn is not None:
                per.setdefault(e.conn, []).append(e)
        return [Connection(self, s.conn, per[s.conn], s, summaries.steps(s.conn))
                for s in summaries.results()]

    def connection(self, number: int) -> Connection:
        """Connection ``number`` (KeyError names the numbers there are)."""
        for c in self.connections:
            if c.number == number:
                return c
        raise KeyError(f"no connection {number}; there are: "
                       f"{', '.join(str(c.number) for c in self.connections) or 'none'}")

    def on(self, port: int | None = None, host: str | None = None) -> Capture:
        """Only the connections with an endpoint on ``port`` (and ``host``), their calls,
        and the datagrams to or from there."""
        def mine(text: str) -> bool:
            h, _, p = text.rpartition(":")
            return (port is None or int(p) == port) and (host is None or h.strip("[]") == host)
        keep = {a.conn for a in self.events if isinstance(a, Annotation)
                and (mine(a.client) or mine(a.server))}
        events = [e for e in self.events
                  if ((mine(e.sender) or mine(e.receiver)) if isinstance(e, Datagram)
                      else e.conn in keep)]
        return Capture(events, self.stats, msl=self.msl, end=self._end, packets=self._packets,
                       left_behind=self.left_behind)

    @cached_property
    def findings(self) -> list[Finding]:
        """What went wrong, rule by rule, with evidence and fix (``rawinspect findings``)."""
        from ..views.findings import diagnose
        anns = [e for e in self.events if isinstance(e, Annotation)]
        calls = self.calls
        return diagnose(anns, calls if calls else None, self.left_behind)

    @cached_property
    def findings_by_conn(self) -> dict[int | None, list[Finding]]:
        """The findings of each connection (by number), in the order of ``findings``."""
        out: dict[int | None, list[Finding]] = {}
        for f in self.findings:
            out.setdefault(f.conn, []).append(f)
        return out

    def write(self, path: str | os.PathLike[str], annotated: bool | None = None) -> None:
        """Save the packets: pcap, or pcapng when ``path`` ends in .pcapng, with the calls.

        ``annotated`` (pcapng only; the default there) puts each TCP packet's annotation in
        its packet comment, as ``replay --annotate -w`` does.
        """
        from ..render.pcapng_comments import comment
        self.stop()
        if self._packets is None:
            raise ValueError("this capture kept no packets to write")
        path = os.fspath(path)
        ng = path.endswith(".pcapng")
        if annotated and not ng:
            raise ValueError(f"{path}: annotations are packet comments, which only pcapng "
                             "has: name it FILE.pcapng")
        comments = ({a.seg.frame: comment(a) for a in self.events if isinstance(a, Annotation)}
                    if ng and annotated is not False else {})
        self._packets.write(path, comments, [*self.calls, *self.left_behind])

    def jsonl(self) -> str:
        """``-T jsonl``: one JSON object per segment and per call."""
        return _render("jsonl", self.events, RenderOptions())

    def table(self, width: int = 120, color: bool = False, time: str = "relative",
              verbose: bool = False) -> str:
        """The default table, one row per segment."""
        return _render("table", self.events, RenderOptions(color, False, width, None, time,
                                                           verbose))

    def ladder(self, ascii: bool = False, width: int = 100, color: bool = False) -> str:
        """Ladder diagrams in the terminal's characters (``ascii`` for plain ASCII)."""
        return _render("ladder", self.events, RenderOptions(color, ascii, width))

    def mermaid(self) -> str:
        """Mermaid sequence diagrams, one per connection."""
        return _render("mermaid", self.events, RenderOptions())

    def svg(self) -> list[str]:
        """One SVG ladder document per connection."""
        return [c.svg() for c in self.connections]

    def html(self) -> str:
        """A whole HTML page: each connection's summary, findings and SVG ladder."""
        from .html_page import page
        return page(self)

    def _repr_html_(self) -> str:
        from .html_page import ladders
        return ladders(self, HTML_CONNECTIONS)

    def assert_no_reset(self) -> None:
        """AssertionError naming every RST, with the ladder of its connection."""
        __tracebackhide__ = True
        from .assertions import resets
        _fail(resets(self))

    def assert_closed_cleanly(self) -> None:
        """AssertionError unless every connection ended with a FIN from both sides, no RST,
        and nobody left in CLOSE_WAIT."""
        __tracebackhide__ = True
        from .assertions import unclean
        _fail(unclean(self))

    def assert_no_findings(self, *rules: str, severity: str | None = None) -> None:
        """AssertionError listing the findings (of ``rules``, or of ``severity`` and worse)."""
        __tracebackhide__ = True
        from .assertions import unwanted_findings
        _fail(unwanted_findings(self, rules, severity))

    def assert_finding(self, rule: str, conn: int | None = None) -> None:
        """AssertionError unless a finding of ``rule`` (on connection ``conn``) was made."""
        __tracebackhide__ = True
        from .assertions import missing_finding
        _fail(missing_finding(self, rule, conn))

    def __repr__(self) -> str:
        if self._pending is not None:
            return "<Capture: capturing>"
        return f"<Capture: {self.stats.summary()}>"


def _fail(message: str) -> None:
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    if message:
        raise AssertionError(message)


def _render(name: str, events: Iterable[Event], opts: RenderOptions) -> str:
    """Events through format ``name``'s renderer, as the command line writes them."""
    out = io.StringIO()
    renderer = make_renderer(name, out, opts)
    write_rows(renderer, events)
    renderer.close()
    return out.getvalue()
