"""Command line: ``rawinspect replay``, ``rawinspect states``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Callable, Sequence

from .. import __version__, build
from ..core.annotation import Annotation
from ..render.pcapng_comments import comment, write_annotated
from ..sources.capfile import CaptureFileError
from ..views.summary import Summaries
from ..render import summaries as conns_render
from ..render.quiet import Quiet
from ..render.pcapwriter import CaptureWriteError
from .capture_cmd import add_capture_arguments, run_capture
from ..render import FORMATS, RenderOptions, make_renderer
from .pipeline import Stats, read_segments, run
from ..render.states_doc import states_mermaid, states_table
from ..core.tracker import DEFAULT_HOLD, DEFAULT_MSL, Tracker

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_NOPRIV = 0, 1, 2, 77


class UsageError(Exception):
    """A bad option value: reported in one line, exit 2."""


def _positive(convert: Callable[[str], float], what: str) -> Callable[[str], float]:
    """An argparse type: ``convert`` the text and insist on a value above zero."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


_positive_float = _positive(float, "a number")
_positive_int = _positive(int, "a whole number")


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    p = argparse.ArgumentParser(
        prog="rawinspect",
        description="Annotate every TCP segment with the TCP state of both endpoints.")
    p.add_argument("--version", action="version", version=f"rawinspect {__version__} ({build()})")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    r = sub.add_parser("replay", help="annotate a pcap or pcapng file (no privileges needed)",
                       description="Annotate every TCP segment of a pcap/pcapng file.")
    r.add_argument("file", metavar="FILE", help="pcap or pcapng capture file")
    r.add_argument("-w", "--write", metavar="FILE.pcapng",
                   help="with --annotate: write the packets again, each TCP packet with "
                        "its annotation as packet comment")
    add_output_options(r)

    c = sub.add_parser("capture", help="capture live (root or CAP_NET_RAW) and annotate",
                       description="Capture TCP live and annotate every segment: a bundled "
                                   "scenario, `-- COMMAND ARGS` while it runs, or everything "
                                   "until Ctrl-C.")
    add_capture_arguments(c)
    add_output_options(c, count_help="stop after capturing N packets")

    sc = sub.add_parser("scenarios", help="list the bundled scenarios")
    sc.add_argument("name", nargs="?", help="show one scenario's lesson and expectations")

    s = sub.add_parser("states", help="print the TCP transition table the tracker uses")
    s.add_argument("--format", choices=("table", "mermaid"), default="table",
                   help="table (default) or a Mermaid state diagram")
    return p


def add_output_options(p: argparse.ArgumentParser,
                       count_help: str = "stop after showing N segments") -> None:
    """Options shared by every command that prints annotations."""
    p.add_argument("--format", "-T", choices=FORMATS + ("zeek",), default="table",
                   help="table (default); jsonl: one JSON object per segment; ladder: a "
                        "ladder diagram; mermaid: a Mermaid sequence diagram per "
                        "connection; svg: a picture per connection (-o FILE.svg); zeek: "
                        "connection summaries as Zeek's conn.log (implies --conns)")
    p.add_argument("--conns", action="store_true",
                   help="one summary per connection (Zeek's conn_state and history, "
                        "final states, who closed first, time in each state); as table, "
                        "jsonl or zeek")
    p.add_argument("--explain", type=_positive_int, metavar="N",
                   help="for connection N: the segments behind each history letter and "
                        "state change, and the time in each state")
    p.add_argument("-o", "--output", metavar="FILE.svg",
                   help="with --format svg: the picture (FILE-connN.svg when several "
                        "connections are shown)")
    p.add_argument("--ascii", action="store_true", help="ladder in plain ASCII")
    p.add_argument("--annotate", action="store_true",
                   help="with -w: pcapng with each packet's annotation as its comment")
    p.add_argument("--width", type=_positive_int, metavar="COLUMNS",
                   help="ladder width (default: the terminal's, or 80)")
    p.add_argument("--conn", type=_positive_int, action="append", metavar="N",
                   help="show only connection N (repeatable)")
    p.add_argument("--host", metavar="ADDR", help="show only segments to or from ADDR")
    p.add_argument("--port", type=_port, metavar="PORT",
                   help="show only segments to or from PORT")
    p.add_argument("-c", "--count", type=_positive_int, metavar="N", help=count_help)
    p.add_argument("--msl", type=_positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME_WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")
    p.add_argument("--hold", type=_positive_float, default=DEFAULT_HOLD, metavar="SECONDS",
                   help="how long a SYN or FIN waits for the peer's answer before it is "
                        f"annotated (default {DEFAULT_HOLD:g})")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the table (auto: only on a terminal)")
    p.add_argument("-q", "--quiet", action="store_true", help="no closing summary line")


def make_filter(args: argparse.Namespace) -> Callable[[Annotation], bool] | None:
    """The display filter the options ask for, or None for everything."""
    conns = set(args.conn or ())
    host, port = args.host, args.port
    if host is not None:
        import ipaddress
        try:
            host = str(ipaddress.ip_address(host.strip("[]")))
        except ValueError:
            raise UsageError(f"--host: not an IP address: {args.host!r}") from None
    if not conns and host is None and port is None:
        return None

    def keep(a: Annotation) -> bool:
        seg = a.seg
        return ((not conns or a.conn in conns)
                and (host is None or seg.src == host or seg.dst == host)
                and (port is None or seg.sport == port or seg.dport == port))
    return keep


def render_options(args: argparse.Namespace) -> RenderOptions:
    """Drawing options from the command line."""
    if args.format == "svg" and not args.output:
        raise UsageError("--format svg needs -o FILE.svg")
    width = args.width or (shutil.get_terminal_size().columns if sys.stdout.isatty() else 80)
    return RenderOptions(use_color(args.color), args.ascii, width, args.output)


def use_color(choice: str) -> bool:
    """Colour only on a terminal, unless asked; NO_COLOR is honoured."""
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def summary_mode(args: argparse.Namespace) -> bool:
    """Whether connection summaries replace the per-segment output."""
    return bool(args.conns or args.explain or args.format == "zeek")


def print_summaries(summaries: Summaries, args: argparse.Namespace) -> int:
    """The connection summaries (or one explanation) in the chosen format."""
    results = summaries.results()
    if args.explain:
        match = [s for s in results if s.conn == args.explain]
        if not match:
            print(f"rawinspect: error: --explain {args.explain}: no such connection "
                  f"({len(results)} seen)", file=sys.stderr)
            return EXIT_RUNTIME
        sys.stdout.write(conns_render.explain(match[0]))
        return EXIT_OK
    fmt = {"jsonl": conns_render.jsonl, "zeek": conns_render.zeek}.get(args.format,
                                                                     conns_render.table)
    sys.stdout.write(fmt(results))
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    if bool(args.write) != bool(args.annotate):
        raise UsageError("replay writes only annotated pcapng: give -w FILE with --annotate")
    keep = make_filter(args)
    summaries = Summaries() if summary_mode(args) else None
    renderer = (Quiet() if summaries is not None
                else make_renderer(args.format, sys.stdout, render_options(args)))
    stats = Stats()
    tracker = Tracker(msl=args.msl, hold=args.hold)
    comments: dict[int, str] = {}

    def sink(anns: list[Annotation]) -> None:
        if args.annotate:
            comments.update((a.seg.frame, comment(a)) for a in anns)
        if summaries is not None:
            summaries.feed(anns)
        renderer.write(anns)
    try:
        run(read_segments(args.file, stats), tracker, sink, keep, stats, args.count)
        if args.annotate:
            write_annotated(args.file, args.write, comments)
    except CaptureWriteError as e:
        renderer.close()
        print(f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    except CaptureFileError as e:
        renderer.close()
        sys.stdout.flush()
        if not args.quiet:
            print(f"rawinspect: {stats.summary()}", file=sys.stderr)
        print(f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    renderer.close()
    code = print_summaries(summaries, args) if summaries is not None else EXIT_OK
    if not args.quiet:
        sys.stdout.flush()
        print(f"rawinspect: {stats.summary()}", file=sys.stderr)
    return code


def cmd_capture(args: argparse.Namespace) -> int:
    return run_capture(args, args.command_argv, make_filter(args), render_options(args))


def cmd_scenarios(args: argparse.Namespace) -> int:
    from ..scenarios import all_scenarios
    scenarios = all_scenarios()
    if args.name is None:
        width = max(map(len, scenarios))
        for name, sc in scenarios.items():
            print(f"{name.ljust(width)}  {sc.summary}")
        return EXIT_OK
    sc = scenarios.get(args.name)
    if sc is None:
        raise UsageError(f"no scenario {args.name!r}; choose from: {', '.join(scenarios)}")
    print(f"{sc.name}: {sc.summary}\n\n{sc.lesson.strip()}\n\nExpected:")
    for i, paths in enumerate(sc.expect.conns, 1):
        for p in paths:
            print(f"  conn {i} ({p.label}): client {' → '.join(p.client)}; "
                  f"server {' → '.join(p.server)}")
    for key, value in sc.expect.outcomes.items():
        print(f"  {key}: {value}")
    for state, history in sc.expect.zeek:
        print(f"  Zeek conn_state {state}, history {history}"
              + (" (any connection)" if sc.expect.each is not None else ""))
    return EXIT_OK


def cmd_states(args: argparse.Namespace) -> int:
    print(states_mermaid() if args.format == "mermaid" else states_table())
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rawinspect`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command: list[str] = []
    if argv and argv[0] == "capture" and "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1:]
        if not command:
            print("rawinspect: error: nothing after `--`: give a command to run",
                  file=sys.stderr)
            return EXIT_USAGE
    args = build_parser().parse_args(argv)
    args.command_argv = command
    handler = {"replay": cmd_replay, "states": cmd_states, "capture": cmd_capture,
               "scenarios": cmd_scenarios}[args.command]
    try:
        return handler(args)
    except UsageError as e:
        print(f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (| head): stop quietly, as tcpdump does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
