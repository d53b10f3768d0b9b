"""``rawinspect capture``: a scenario, a command, or whatever passes, live on loopback."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from ..render.pcapng_comments import comment, write_annotated
from ..core.annotation import Annotation
from .capture_loop import DEFAULT_LINGER, Limits, StopFlag, capture_loop
from ..render.pcapwriter import CaptureWriteError, PcapWriter, give_to_invoking_user
from ..views.summary import Summaries
from ..render import RenderOptions, make_renderer
from ..render.quiet import Quiet
from .pipeline import Stats
from ..sources.sniffer import DEFAULT_BUFFER, DEFAULT_SNAPLEN, NoPrivilegeError, Sniffer, SnifferError
from ..core.tracker import Tracker

if TYPE_CHECKING:
    from ..sources.kernel_trace import KernelTrace
    from ..scenarios.check import Verdict
    from ..scenarios.runner import ScenarioRun

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_NOPRIV = 0, 1, 2, 77


def add_capture_arguments(p: argparse.ArgumentParser) -> None:
    """Capture options, tcpdump's letters where tcpdump has one."""
    p.add_argument("scenario", nargs="?", metavar="SCENARIO",
                   help="a bundled scenario (see `rawinspect scenarios`); or `-- COMMAND ARGS`")
    p.add_argument("-i", "--interface", default="lo", metavar="IFACE",
                   help="interface to capture on (default lo)")
    p.add_argument("-f", "--filter", metavar="BPF",
                   help="capture filter in tcpdump syntax (default: tcp; for a scenario, "
                        "its ports)")
    p.add_argument("-w", "--write", metavar="FILE",
                   help="save packets to FILE (pcap; pcapng if it ends in .pcapng); a "
                        "scenario saves to SCENARIO.pcap unless told otherwise")
    p.add_argument("--duration", type=float, metavar="SECONDS", help="stop after SECONDS")
    p.add_argument("--linger", type=float, default=DEFAULT_LINGER, metavar="SECONDS",
                   help="keep capturing this long after the scenario or command ends "
                        f"(default {DEFAULT_LINGER:g})")
    p.add_argument("-s", "--snaplen", type=int, default=DEFAULT_SNAPLEN, metavar="BYTES",
                   help=f"bytes kept of each packet (default {DEFAULT_SNAPLEN})")
    p.add_argument("-B", "--buffer-size", type=int, default=DEFAULT_BUFFER >> 10,
                   metavar="KiB", help="socket receive buffer in KiB (default "
                                       f"{DEFAULT_BUFFER >> 10})")
    p.add_argument("--report", metavar="FILE",
                   help="with a scenario: save the programs' report and the verdict as JSON")
    p.add_argument("--verify", action="store_true",
                   help="check every endpoint's states against the kernel's own record "
                        "(tracepoint sock:inet_sock_set_state)")
    p.add_argument("--strict", action="store_true",
                   help="with --verify: exit 1 when kernel and inferred states disagree")
    p.add_argument("--as-root", action="store_true",
                   help="under sudo, run COMMAND as root instead of the invoking user")


def _invoking_user() -> tuple[int, int] | None:
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() == 0 and uid.isdigit() and gid.isdigit() and int(uid) != 0:
        return int(uid), int(gid)
    return None


def run_capture(args: argparse.Namespace, command: list[str], keep: Any,
                opts: RenderOptions) -> int:
    """The whole capture: open, run, annotate, save, summarise, judge."""
    from ..scenarios import all_scenarios
    from ..scenarios.runner import ScenarioRun, capture_filter, free_ports

    err = sys.stderr
    scenario = None
    if args.scenario:
        if command:
            raise _usage("give a scenario or `-- COMMAND`, not both")
        scenarios = all_scenarios()
        scenario = scenarios.get(args.scenario)
        if scenario is None:
            raise _usage(f"no scenario {args.scenario!r}; choose from: "
                         + ", ".join(scenarios))
    for name in ("duration", "linger"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise _usage(f"--{name} must not be negative")
    if args.snaplen < 64 or args.buffer_size <= 0:
        raise _usage("--snaplen must be at least 64 and --buffer-size positive")
    if args.annotate and not (args.write or "").endswith(".pcapng"):
        raise _usage("--annotate needs -w FILE.pcapng")
    if args.strict and not args.verify:
        raise _usage("--strict needs --verify")
    if args.report and not scenario:
        raise _usage("--report needs a scenario")

    ports = free_ports(scenario.host, scenario.ports) if scenario else []
    expression = args.filter or (capture_filter(ports) if scenario else "tcp")
    write = args.write or (f"{scenario.name}.pcap" if scenario else None)
    try:
        sniffer = Sniffer(args.interface, expression, args.snaplen, args.buffer_size << 10)
    except NoPrivilegeError as e:
        print(f"rawinspect: {e}", file=err)
        return EXIT_NOPRIV
    except SnifferError as e:
        print(f"rawinspect: error: {e}", file=err)
        return EXIT_RUNTIME
    writer = None
    stop = StopFlag()
    restore = stop.install()
    child: subprocess.Popen | None = None
    run: ScenarioRun | None = None
    trace: KernelTrace | None = None
    try:
        trace = _start_trace(ports) if args.verify else None
        if write:
            writer = PcapWriter(write, sniffer.linktype, args.snaplen)
        if args.report:
            save_report(args.report, args.scenario or "", {}, None)  # fail early, not after
        what = (f"scenario {scenario.name} on {scenario.host} port "
                f"{','.join(map(str, ports))}" if scenario else
                f"`{' '.join(command)}`" if command else "until Ctrl-C")
        print(f"rawinspect: capturing on {args.interface} ({what}), filter "
              f"{expression!r}" + (f", saving to {write}" if write else ""), file=err)
        if scenario:
            run = ScenarioRun(scenario, scenario.host, ports)
            child = run.proc
        elif command:
            try:
                child = _start_command(command, args.as_root)
            except OSError as e:
                print(f"rawinspect: error: cannot run {command[0]!r}: {e.strerror or e}",
                      file=err)
                return EXIT_RUNTIME
        from .cli import print_summaries, summary_mode
        summaries = Summaries() if summary_mode(args) else None
        renderer = (Quiet() if args.format == "zeek" or args.explain
                    else make_renderer(args.format, sys.stdout, opts))
        seen: list[Annotation] = []  # everything, for the verdict and the verification
        comments: dict[int, str] = {}

        def sink(anns: list[Annotation]) -> None:
            if scenario or trace is not None:
                seen.extend(anns)
            if args.annotate:
                comments.update((a.seg.frame, comment(a)) for a in anns)
            if summaries is not None:
                summaries.feed(anns)
            shown = anns if keep is None else [a for a in anns if keep(a)]
            if shown:
                renderer.write(shown)
                renderer.flush()

        stats = Stats(dropped=0)
        tracker = Tracker(msl=args.msl, hold=args.hold)
        limits = Limits(args.count, args.duration or (scenario.timeout if scenario else None),
                        args.linger)
        try:
            reason = capture_loop(sniffer, writer, tracker, sink, None, stats, limits, stop,
                                  child, trace.read if trace is not None else None)
        finally:
            renderer.close()
            sys.stdout.flush()
        if summaries is not None:
            summaries.end = max(summaries.end, time.time())  # TIME_WAIT runs to the end
            print_summaries(summaries, args)
        disagree = 0
        if trace is not None:
            disagree = _report_verification(trace, seen, args)
            trace = None
        if writer is not None:
            writer.close()
            if args.annotate and write:
                write_annotated(write, write, comments)
        if not args.quiet:
            print(f"rawinspect: {stats.summary()}", file=err)
        if stop.signum:
            return 128 + stop.signum
        if run is not None:
            code = _judge(run, seen, args)
        elif child is not None:
            code = child.wait() if reason == "program ended" else EXIT_OK
        else:
            code = EXIT_OK
        return code or (EXIT_RUNTIME if disagree and args.strict else EXIT_OK)
    except CaptureWriteError as e:
        print(f"rawinspect: error: {e}", file=err)
        return EXIT_RUNTIME
    finally:
        restore()
        if trace is not None:
            trace.close()
        sniffer.close()
        if writer is not None:
            try:
                writer.close()
            except CaptureWriteError:
                pass
        if run is not None:
            run.stop()
        elif child is not None and child.poll() is None:
            child.terminate()
            child.wait()


def _start_trace(ports: list[int]) -> KernelTrace | None:
    """The kernel trace for --verify, or None (said on stderr) where it cannot run."""
    from ..sources.kernel_trace import KernelTrace, TraceUnavailable
    try:
        return KernelTrace(ports)
    except TraceUnavailable as e:
        print(f"rawinspect: --verify unavailable: {e}; capturing without verification",
              file=sys.stderr)
        return None


def _report_verification(trace: KernelTrace, seen: list[Annotation],
                         args: argparse.Namespace) -> int:
    """Close the trace, compare, print; returns the number of disagreements."""
    from ..sources.kernel_trace import socket_table
    from ..views.verify import verify
    lost = trace.close()
    report = verify(seen, trace.events, socket_table())
    report.lost, report.skew = lost, trace.skew
    out = sys.stdout if args.format in ("table", "ladder") else sys.stderr
    print("\nkernel (sock:inet_sock_set_state) versus inferred states:", file=out)
    for line in report.lines():
        print(f"  {line}", file=out)
    return report.disagreements + (1 if lost else 0)


def _start_command(command: list[str], as_root: bool) -> subprocess.Popen:
    """Start COMMAND, as the user who ran sudo unless ``as_root``."""
    user = None if as_root else _invoking_user()
    if user is None:
        return subprocess.Popen(command)
    return subprocess.Popen(command, user=user[0], group=user[1], extra_groups=[])


def _judge(run: ScenarioRun, seen: list[Annotation], args: argparse.Namespace) -> int:
    """Print the programs' report and the verdict; exit 1 unless every expectation held."""
    from ..scenarios.check import verify
    scenario = run.scenario
    report = run.report()
    verdict = verify(scenario.expect, seen, report)
    out = sys.stdout if args.format in ("table", "ladder") else sys.stderr
    print(f"\nscenario {scenario.name}: {scenario.summary}", file=out)
    for line in report.get("info", []):
        print(f"  programs: {line}", file=out)
    for line in verdict.lines():
        print(f"  {line}", file=out)
    if args.report:
        save_report(args.report, scenario.name, report, verdict)
    return EXIT_OK if verdict.ok else EXIT_RUNTIME


def save_report(path: str, name: str, report: dict[str, Any], verdict: Verdict | None
                ) -> None:
    """The programs' report and the verdict, as JSON (read back by the tests)."""
    try:
        with open(path, "w") as f:
            json.dump({"scenario": name, "programs": report,
                       "ok": verdict.ok if verdict else None,
                       "verdict": verdict.lines() if verdict else []}, f, indent=1)
            f.write("\n")
    except OSError as e:
        raise CaptureWriteError(f"--report {path}: {e.strerror or e}") from None
    give_to_invoking_user(path)


def _usage(msg: str) -> Exception:
    from .cli import UsageError
    return UsageError(msg)
