"""What a run shows, the same for replay and live capture.

The display filter (--conn/--host/--port), the count of segments shown (-c in replay),
per-segment output or connection summaries (--conns, --explain, -T zeek), and the
closing line: all decided here, so both commands count and print alike.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import shutil
import sys
from typing import Any, Callable, Iterator

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..core.segment import Segment
from ..render import DEFAULT_FORMAT, FORMATS, Renderer, RenderOptions, conns_formatter, make_renderer
from ..render.findings import by_conn, findings_jsonl, findings_text
from ..render.quiet import Quiet
from ..render.summaries import explain
from ..views.left_behind import saved_lines
from ..views.findings import Diagnoser, Finding
from ..views.summary import Summaries
from .options import EXIT_OK, EXIT_RUNTIME, UsageError
from .annotator import Annotator
from .pipeline import Stats, make_tracker

Keep = Callable[[Annotation], bool]
Tap = Callable[[list[Annotation]], None]
CallsTap = Callable[[list[Call]], None]
DatagramsTap = Callable[[list[Datagram]], None]


def make_filter(args: argparse.Namespace) -> Keep | None:
    """The display filter the options ask for, or None for everything."""
    conns = set(args.conn or ())
    match = packet_filter(args)
    if not conns and match is None:
        return None

    def keep(a: Annotation) -> bool:
        return (not conns or a.conn in conns) and (match is None or match(a.seg))
    return keep


def packet_filter(args: argparse.Namespace) -> Callable[[Segment | Datagram], bool] | None:
    """--host and --port as a test of a segment or datagram (None: neither given)."""
    host, port = args.host, args.port
    if host is not None:
        try:
            host = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            raise UsageError(f"--host: not an IP address: {args.host!r}") from None
    if host is None and port is None:
        return None

    def match(p: Segment | Datagram) -> bool:
        return ((host is None or p.src == host or p.dst == host)
                and (port is None or p.sport == port or p.dport == port))
    return match


def use_color(choice: str) -> bool:
    """Colour only on a terminal, unless asked; NO_COLOR is honoured."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def settle_format(args: argparse.Namespace) -> None:
    """Choose the format (-o FILE.svg alone means svg) and refuse the options it would ignore."""
    files = [f.name for f in FORMATS.values() if f.stream == "file"]
    if args.format is None:
        suffix = os.path.splitext(args.output or "")[1].lower().lstrip(".")
        args.format = suffix if suffix in files else DEFAULT_FORMAT
    fmt = args.format
    if FORMATS[fmt].stream == "file" and not args.output:
        raise UsageError(f"--format {fmt} needs -o FILE.{fmt}")
    if args.output and FORMATS[fmt].stream != "file":
        raise UsageError(f"-o FILE is for --format {', '.join(files)}; --format {fmt} "
                         "prints to stdout (redirect it: > FILE)")
    for flag, given, formats in (("--ascii", args.ascii, ("ladder",)),
                                 ("--width", args.width, ("table", "ladder")),
                                 ("--time", args.time, ("table",)),
                                 ("--verbose", args.verbose, ("table",)),
                                 ("-X/--hex", args.hex, ("table",))):
        if given and fmt not in formats:
            raise UsageError(f"{flag} is for --format {' or '.join(formats)}, not {fmt}")
    if args.findings_only and (args.conns or args.explain or FORMATS[fmt].per_connection):
        raise UsageError("--findings-only prints only the findings: it cannot go with "
                         "--conns, --explain or --format zeek")
    for flag, given in (("--time", args.time), ("--verbose", args.verbose),
                        ("-X/--hex", args.hex)):
        if given and summary_mode(args):
            raise UsageError(f"{flag} is for the per-segment table, not the connection "
                             "summaries (--conns, --explain)")


def render_options(args: argparse.Namespace) -> RenderOptions:
    """Drawing options from the command line."""
    width = args.width or (shutil.get_terminal_size().columns if sys.stdout.isatty() else 80)
    return RenderOptions(use_color(args.color), args.ascii, width, args.output,
                         args.time or "relative", args.verbose, args.hex)


def summary_mode(args: argparse.Namespace) -> bool:
    """Whether connection summaries replace the per-segment output."""
    return bool(args.conns or args.explain or FORMATS[args.format].per_connection)


class Output:
    """One run's display: takes every final annotation, shows what the options ask for.

    ``tap`` (the caller's: pcapng comments, the scenario's verdict) sees every
    annotation, filtered or not, until the count is reached; ``calls_tap`` every call,
    ``datagrams_tap`` every UDP datagram.
    """

    def __init__(self, args: argparse.Namespace, stats: Stats, *, live: bool,
                 tap: Tap | None = None, calls_tap: CallsTap | None = None,
                 datagrams_tap: DatagramsTap | None = None, label: str = "") -> None:
        """``label`` leads the closing line (a file's name, when there are several)."""
        self.args = args
        self.label = label
        self.stats = stats
        self.live = live
        self.tap = tap
        self.calls_tap = calls_tap
        self.datagrams_tap = datagrams_tap
        self.verdict_lines: list[str] = []
        self.verdict_ok: bool | None = None
        settle_format(args)
        self.keep = make_filter(args)
        self.keep_packet = packet_filter(args)
        # -c: replay stops after showing N segments; a live capture stops after capturing
        # N packets, which its capture loop counts.
        self.count: int | None = None if live else args.count
        # Zeek's conn.log alone needs neither the summaries' detail nor the findings; only
        # --explain reads the change events.
        zeek_only = args.format == "zeek" and not args.explain
        self.summaries = (Summaries(2 * args.msl, detail=not zeek_only,
                                    changes=bool(args.explain))
                          if summary_mode(args) else None)
        # Wireshark's analysis flags: read by every output but Zeek's conn.log alone.
        self.flags_wanted = not zeek_only or tap is not None
        self.findings_wanted = self.summaries is None or (
            args.format in ("table", "jsonl") and not args.explain)
        self.renderer: Renderer = (Quiet() if self.summaries is not None or args.findings_only
                                   else make_renderer(args.format, sys.stdout,
                                                      render_options(args)))
        self.diagnoser = Diagnoser()
        self.sockets: list[dict[str, Any]] = []  # the sockets left behind, for the findings

    @property
    def per_connection(self) -> bool:
        """Whether what is shown is made per connection (summaries, findings), so that each
        connection's annotations in their order will do: not frame order across
        connections. Not with a count (the first N segments), a tap, or live capture."""
        return ((self.summaries is not None or bool(self.args.findings_only))
                and self.count is None and self.tap is None and not self.live)

    def tracker(self, calls: bool) -> Annotator:
        """The tracker this output wants; ``calls``: the programs' calls are recorded.

        Frame order unless the output is per connection; the retired connections reported
        (for ``retire``) unless a connection's calls may still come; Wireshark's flags for
        every output that reads them, and for the calls view (it reads retransmissions).
        """
        return make_tracker(self.args.msl, self.args.hold, not self.per_connection or calls,
                            report_retired=not calls, wireshark=self.flags_wanted or calls)

    def sink(self, anns: list[Annotation]) -> bool:
        """Show what passes the filter, up to the count; False once the count is shown."""
        stats, count = self.stats, self.count
        if count is not None and stats.shown >= count:
            return False
        if self.tap is not None:
            self.tap(anns)
        keep = self.keep
        shown = anns if keep is None else [a for a in anns if keep(a)]
        more = True
        if count is not None and stats.shown + len(shown) >= count:
            shown = shown[:count - stats.shown]
            more = False
        stats.shown += len(shown)
        if shown:
            if self.summaries is not None:
                self.summaries.feed(shown)
            if self.findings_wanted:
                self.diagnoser.feed(shown)
            self.renderer.write(shown)
            if self.live:
                self.renderer.flush()
        return more

    def retire(self, conns: list[int]) -> None:
        """Connections the tracker forgot (no calls recorded): the summaries and findings
        are made of them now, and their records go, so that memory follows the open
        connections. Not with ``--explain``, which reads a connection's every change."""
        if not conns or self.args.explain:
            return
        if self.summaries is not None:
            self.summaries.retire(conns)
        if self.findings_wanted:
            self.diagnoser.retire(conns)

    def sink_calls(self, calls: list[Call]) -> None:
        """Show the programs' calls that pass the display filter, between the segments."""
        if self.calls_tap is not None:
            self.calls_tap(calls)
        if self.keep is not None:
            calls = [c for c in calls if self.keep_call(c)]
        if self.findings_wanted:
            self.diagnoser.feed_calls(calls)
        if calls:
            self.renderer.write_calls(calls)
            if self.live:
                self.renderer.flush()

    def sink_datagrams(self, datagrams: list[Datagram]) -> None:
        """Show the UDP datagrams that pass the display filter, between the segments
        (--conn keeps none: a datagram belongs to no connection; --findings-only none),
        or count them in their flows (--conns, zeek)."""
        if self.datagrams_tap is not None:
            self.datagrams_tap(datagrams)
        args = self.args
        if args.conn or args.findings_only:
            return
        keep = self.keep_packet
        if keep is not None:
            datagrams = [d for d in datagrams if keep(d)]
        if datagrams and self.summaries is not None:
            self.summaries.feed_datagrams(datagrams)
        elif datagrams:
            self.renderer.write_datagrams(datagrams)
            if self.live:
                self.renderer.flush()

    def keep_call(self, c: Call) -> bool:
        """A call passes the display filter when its connection does."""
        args = self.args
        host = args.host.strip("[]") if args.host else None
        ends = (c.local, c.peer)
        return ((not args.conn or c.conn in args.conn)
                and (host is None or any(e.rsplit(":", 1)[0].strip("[]") == host for e in ends))
                and (args.port is None or any(e.endswith(f":{args.port}") for e in ends)))

    @property
    def writes_file(self) -> bool:
        """The format draws a file (-o) rather than printing to stdout."""
        return FORMATS[self.args.format].stream == "file" and self.summaries is None

    def describe(self, what: str, capture: str | None, interface: str = "",
                 bpf: str = "") -> None:
        """What was captured, for the formats that say so (the HTML report's header);
        ``capture`` is the file the segments' bytes can be read back from."""
        info = getattr(self.renderer, "info", None)
        if info is not None:  # a renderer that tells what was captured (the report)
            info.what, info.capture, info.interface, info.filter = what, capture, interface, bpf
        hexview = getattr(self.renderer, "hexview", None)
        if hexview is not None:  # the table's -X reads the bytes from the capture file
            hexview.use(capture)

    def verdict(self, lines: list[str], ok: bool) -> None:
        """A scenario's verdict, for the formats that show it (the HTML report)."""
        self.verdict_lines, self.verdict_ok = lines, ok
        info = getattr(self.renderer, "info", None)
        if info is not None:  # a renderer that tells what was captured (the report)
            info.verdict, info.ok = lines, ok

    def close(self) -> None:
        """End the per-segment output (pictures and diagrams are drawn now)."""
        info = getattr(self.renderer, "info", None)
        if info is not None:  # a renderer that tells what was captured (the report)
            info.packets, info.dropped = self.stats.packets, self.stats.dropped
        self.renderer.close()
        sys.stdout.flush()

    def print_summaries(self, end: float | None = None) -> int:
        """The connection summaries (or one explanation), if asked; an exit code.

        ``end``: when the capture ended, if later than its last packet (live capture:
        TIME_WAIT runs on to the end). A ``--conn N`` that never appeared is an error.
        """
        missing = sorted(n for n in set(self.args.conn or ()) if n > self.stats.connections)
        if missing:
            print(f"rawinspect: error: --conn {', '.join(map(str, missing))}: no such "
                  f"connection ({self.stats.connections} seen)", file=sys.stderr)
        code = EXIT_RUNTIME if missing else EXIT_OK
        if self.summaries is None:
            return code
        if end is not None:
            self.summaries.end = max(self.summaries.end, end)
        number = self.args.explain
        if number:
            results = self.summaries.results()
            match = [s for s in results if s.conn == number]
            if not match:
                print(f"rawinspect: error: --explain {number}: no such connection "
                      f"({len(results)} seen)", file=sys.stderr)
                return EXIT_RUNTIME
            sys.stdout.write(explain(match[0]))
            return code
        each, udp = self.summaries.each(), self.summaries.udp.rows
        if self.args.format in ("table", "jsonl"):
            from ..render import summaries as conns_render
            write = conns_render.table if self.args.format == "table" else conns_render.jsonl
            write(sys.stdout, each, by_conn(self.findings()), udp)
        else:
            conns_formatter(self.args.format)(sys.stdout, each, udp)
        return code

    def findings(self) -> Iterator[Finding]:
        """Every finding of the run so far (with the sockets left behind, once known),
        made as they are read."""
        self.diagnoser.recorded |= self.stats.calls is not None
        return self.diagnoser.each(self.sockets)

    def print_findings(self) -> None:
        """The findings after everything else: a text section in table and ladder (and
        with --findings-only), ``{"kind": "finding"}`` records in jsonl; none with the
        connection summaries (their rows list them)."""
        if self.summaries is not None:
            return
        findings = self.findings()
        fmt = self.args.format
        if fmt == "jsonl":
            findings_jsonl(sys.stdout, findings)
        elif fmt in ("table", "ladder") or self.args.findings_only:
            findings_text(sys.stdout, findings, self.diagnoser.recorded,
                          render_options(self.args).width, blank=not self.args.findings_only)

    def left_behind(self, records: list[dict[str, Any]]) -> None:
        """The sockets left behind (saved ``as_dict`` records): jsonl records, or the
        lines with their lessons after the summaries."""
        self.sockets = records
        if self.args.findings_only:
            return
        if self.args.format == "jsonl" and self.summaries is None:
            for record in records:
                print(json.dumps({"kind": "socket", **record}))
            return
        lines = saved_lines(records)
        out = sys.stdout if self.args.format in ("table", "ladder") else sys.stderr
        if lines:
            print("", file=out)
        for line in lines:
            print(line, file=out)

    def report(self, lines: list[str]) -> None:
        """A report after the capture (message boundaries): a blank line, the heading
        line, then the lines indented; on stdout for table and ladder, else stderr."""
        if not lines or self.args.findings_only:
            return
        out = sys.stdout if self.args.format in ("table", "ladder") else sys.stderr
        print("", file=out)
        for line in lines:
            print(line if line.endswith(":") else f"  {line}", file=out)

    def closing_line(self) -> None:
        """The findings, then packets, segments, connections, shown and skipped, on
        stderr unless -q."""
        self.print_findings()
        sys.stdout.flush()
        if not self.args.quiet:
            print(f"rawinspect: {self.label}{self.stats.summary()}", file=sys.stderr)
