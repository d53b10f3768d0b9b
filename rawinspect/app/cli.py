"""Command line: ``rawinspect replay``, ``capture``, ``scenarios``, ``states`` and
``findings``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from .. import __version__, build
from ..core.annotation import Annotation
from ..render import FORMATS
from ..render.pcapng_comments import comment, write_annotated
from ..render.pcapwriter import CaptureWriteError, check_writable
from ..render.states_doc import states_mermaid, states_table
from ..sources.calls_file import CallsFileError, read_saved
from ..sources.capfile import CaptureFileError
from ..scenarios.describe import expectations
from .capture_cmd import add_capture_arguments, run_capture
from .options import (EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, UsageError, add_output_options,
                      check_annotate, positive_int)
from .collector import collector_paused
from .jobs import jobs_wanted, replay_files, replay_sharded, usable
from .output import Output, make_filter, settle_format
from .pipeline import Datagrams, Stats, read_segments, run
from .timeline import boundary_lines, replay_with_calls


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
    r.add_argument("file", metavar="FILE", nargs="+",
                   help="pcap or pcapng capture file; several are each a capture of their "
                        "own, one after the other (with -j N, N at a time)")
    r.add_argument("-w", "--write", metavar="FILE.pcapng",
                   help="with --annotate: write the packets again, each TCP packet with "
                        "its annotation as packet comment")
    r.add_argument("--no-calls", action="store_true",
                   help="leave out the programs' calls saved with the capture")
    r.add_argument("-j", "--jobs", type=jobs_count, default="auto", metavar="N",
                   help="processes that share the work, each a part of the connections "
                        "(the output is the same): jsonl, --conns, zeek and "
                        "--findings-only of a file without saved calls or display filters; "
                        "with several files, files at a time. auto (the default): the "
                        "cores for several files, and for one of 32 MB or more shown per "
                        "connection (--conns, zeek, --findings-only); one job otherwise")
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
    f = sub.add_parser("findings", help="list the findings' rules: each socket mistake, "
                                        "its lesson and its fix")
    f.add_argument("rule", nargs="?", help="show one rule")
    return p


def cmd_replay(args: argparse.Namespace) -> int:
    """Annotate one capture file, or several, each a capture of its own (``-j N``: N at a
    time, their outputs in the order given); the worst exit code."""
    with collector_paused():
        return _replay(args)


def _replay(args: argparse.Namespace) -> int:
    files: list[str] = args.file
    if len(files) == 1:
        args.file = files[0]
        return replay_one(args)
    if args.write or FORMATS[settled(args)].stream == "file":
        raise UsageError("-w and -o write one file: give one capture at a time")
    make_filter(args)   # a bad --host: said once, before any file
    jobs = len(os.sched_getaffinity(0)) if args.jobs == "auto" else int(args.jobs)
    return replay_files(args, files, jobs, replay_one)


def settled(args: argparse.Namespace) -> str:
    """The format the options choose (UsageError for a bad combination)."""
    settle_format(args)
    return str(args.format)


def replay_one(args: argparse.Namespace, label: str = "") -> int:
    """Annotate a capture file through the same output as live capture; ``label`` leads
    the closing line (the file's name when there are several).

    Every option is checked, and the file opened, before anything is read: a usage
    error (exit 2) or one error line (exit 1), nothing else.
    """
    check_annotate(args)
    if args.write and not args.annotate:
        raise UsageError("replay -w writes the packets with their annotations: add --annotate")
    comments: dict[int, str] = {}

    def note(anns: list[Annotation]) -> None:
        comments.update((a.seg.frame, comment(a)) for a in anns)
    stats = Stats()
    output = Output(args, stats, live=False, tap=note if args.annotate else None, label=label)
    output.describe(f"replay {args.file}", args.file)
    try:
        if args.write:
            check_writable(args.write)
        udp = Datagrams(output.sink_datagrams)
        segments = read_segments(args.file, stats, udp.add)
        calls, sockets = ([], []) if args.no_calls else read_saved(args.file)
    except (CaptureWriteError, CaptureFileError, CallsFileError) as e:
        print(f"rawinspect: error: {label}{e}" if label and args.file not in str(e)
              else f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    try:
        tracker = output.tracker(bool(calls))
        timeline = None
        if calls:
            _one_job(args, "the capture has the programs' calls")
            timeline = replay_with_calls(segments, tracker, output, stats, calls, udp)
        elif not _in_parallel(args, output):
            run(segments, tracker, output.sink, stats, udp, output.retire)
        if args.annotate:
            write_annotated(args.file, args.write, comments, [*calls, *sockets])
    except (CaptureWriteError, CaptureFileError) as e:
        output.close()
        if isinstance(e, CaptureFileError) and stats.packets:
            output.closing_line()  # what was read before the damage
        print(f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    output.close()
    code = output.print_summaries()
    output.left_behind(sockets)
    if timeline is not None:
        output.report(boundary_lines(timeline))
    output.closing_line()
    return code


def _in_parallel(args: argparse.Namespace, output: Output) -> bool:
    """Replay with several jobs when asked and possible (they print the same as one)."""
    jobs = jobs_wanted(args)
    if jobs <= 1:
        return False
    why = usable(args)
    if why:
        _one_job(args, why)
        return False
    return replay_sharded(args, jobs, output)


def _one_job(args: argparse.Namespace, why: str) -> None:
    """Say why -j N (given, N > 1) runs as one job."""
    if args.jobs not in ("auto", "1"):
        print(f"rawinspect: one job: {why}", file=sys.stderr)


def jobs_count(text: str) -> str:
    """An argparse type: "auto" or a positive number of jobs."""
    if text != "auto":
        positive_int(text)
    return text


def cmd_capture(args: argparse.Namespace) -> int:
    return run_capture(args)


def cmd_scenarios(args: argparse.Namespace) -> int:
    from ..scenarios import all_scenarios
    scenarios = all_scenarios()
    if args.name is None:
        width = max(map(len, scenarios))
        for name, sc in scenarios.items():
            print(f"{name.ljust(width)}  {sc.summary}")
        return EXIT_OK
    chosen = scenarios.get(args.name)
    if chosen is None:
        raise UsageError(f"no scenario {args.name!r}; choose from: {', '.join(scenarios)}")
    print(f"{chosen.name}: {chosen.summary}\n\n{chosen.lesson.strip()}\n")
    print("\n".join(expectations(chosen.expect)))
    return EXIT_OK


def cmd_states(args: argparse.Namespace) -> int:
    print(states_mermaid() if args.format == "mermaid" else states_table())
    return EXIT_OK


def cmd_findings(args: argparse.Namespace) -> int:
    from ..render.findings import rules_text
    from ..views.findings import RULES
    if args.rule is not None and args.rule not in RULES:
        raise UsageError(f"no rule {args.rule!r}; choose from: {', '.join(RULES)}")
    print(rules_text(args.rule), end="")
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
               "scenarios": cmd_scenarios, "findings": cmd_findings}[args.command]
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
