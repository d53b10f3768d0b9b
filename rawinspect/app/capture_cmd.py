"""``rawinspect capture``: a scenario, a command, or whatever passes, live on loopback."""

from __future__ import annotations

import argparse
import errno
import heapq
import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..sources.calls_file import SOCKET
from ..render import write_rows
from ..render.pcapng_comments import comment, write_annotated
from ..render.pcapwriter import (CaptureWriteError, PcapWriter, check_writable,
                                 give_to_invoking_user)
from ..sources.packet_source import PacketSource
from ..sources.sniffer import DEFAULT_BUFFER, DEFAULT_SNAPLEN, NoPrivilegeError, Sniffer, SnifferError
from .gate import Gate
from .capture_loop import DEFAULT_LINGER, Limits, Program, StopFlag, capture_loop
from .options import EXIT_NOPRIV, EXIT_OK, EXIT_RUNTIME, UsageError, check_annotate
from .output import Output
from .pipeline import Datagrams, Stats

if TYPE_CHECKING:
    from ..scenarios.base import Scenario
    from ..scenarios.check import Verdict
    from ..scenarios.runner import ScenarioRun
    from ..sources.call_trace import CallTrace
    from ..sources.kernel_trace import KernelTrace
    from .recording import Recording

# Opens the packet source: (interface, capture filter, snap length, buffer bytes).
SourceFactory = Callable[[str, str, int, int], PacketSource]


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
    p.add_argument("--no-calls", action="store_true",
                   help="do not record the programs' socket calls (recorded by default for "
                        "a scenario or COMMAND, with the kernel's syscall tracepoints)")
    p.add_argument("--all-traffic", action="store_true",
                   help="with COMMAND or --pid: show every connection that passes the "
                        "filter, not only those of the program's own sockets")
    p.add_argument("--pid", type=int, metavar="PID",
                   help="follow a running process and every process it forks: its calls "
                        "and its connections, until it exits (or Ctrl-C, --duration)")


def _invoking_user() -> tuple[int, int] | None:
    uid, gid = os.environ.get("SUDO_UID", ""), os.environ.get("SUDO_GID", "")
    if os.geteuid() == 0 and uid.isdigit() and gid.isdigit() and int(uid) != 0:
        return int(uid), int(gid)
    return None


@dataclass
class Plan:
    """What to capture, decided from the options before anything opens."""
    scenario: Scenario | None
    command: list[str]
    ports: list[int]
    expression: str
    write: str | None
    pid: int | None = None

    @property
    def program(self) -> bool:
        """A command or a running process: its own traffic is what is shown."""
        return bool(self.command) or self.pid is not None

    def describe(self) -> str:
        """What runs while we capture, for the opening line."""
        if self.pid is not None:
            return f"process {self.pid} and its children"
        if self.scenario:
            return (f"scenario {self.scenario.name} on {self.scenario.host} port "
                    f"{','.join(map(str, self.ports))}")
        return f"`{' '.join(self.command)}`" if self.command else "until Ctrl-C"


def plan_capture(args: argparse.Namespace) -> Plan:
    """Check the capture options (UsageError) and choose scenario, ports, filter and file."""
    from ..scenarios import all_scenarios
    from ..scenarios.runner import capture_filter, free_ports

    command: list[str] = args.command_argv
    scenario = None
    if args.scenario:
        if command:
            raise UsageError("give a scenario or `-- COMMAND`, not both")
        scenarios = all_scenarios()
        scenario = scenarios.get(args.scenario)
        if scenario is None:
            raise UsageError(f"no scenario {args.scenario!r}; choose from: "
                             + ", ".join(scenarios))
    for name in ("duration", "linger"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise UsageError(f"--{name} must not be negative")
    if args.snaplen < 64 or args.buffer_size <= 0:
        raise UsageError("--snaplen must be at least 64 and --buffer-size positive")
    check_annotate(args)
    if args.strict and not args.verify:
        raise UsageError("--strict needs --verify")
    if args.report and not scenario:
        raise UsageError("--report needs a scenario")
    _check_pid(args, command, scenario)
    if args.all_traffic and not (command or args.pid):
        raise UsageError("--all-traffic is for `capture -- COMMAND` or --pid (the others "
                         "show all)")
    if scenario is None:
        return Plan(None, command, [], args.filter or "tcp", args.write, args.pid)
    ports = free_ports(scenario.host, scenario.ports)
    write = args.write or f"{scenario.name}.pcap"
    if args.format == "html" and not args.output:  # the report beside its pcap
        args.output = os.path.join(os.path.dirname(write), f"{scenario.name}.html")
    return Plan(scenario, command, ports, args.filter or capture_filter(ports, scenario.udp),
                write)


def _check_pid(args: argparse.Namespace, command: list[str], scenario: Scenario | None
               ) -> None:
    """--pid names a running process and goes with nothing that starts one."""
    if args.pid is None:
        return
    from ..sources.process import alive
    if command or scenario:
        raise UsageError("give --pid, a scenario or `-- COMMAND`, only one")
    if args.no_calls:
        raise UsageError("--pid follows a process by its calls: it cannot go with --no-calls")
    if not alive(args.pid):
        raise UsageError(f"--pid {args.pid}: no such process")


class _Running:
    """A process we did not start, seen through /proc: what the capture loop polls."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        from ..sources.process import alive
        return None if alive(self.pid) else 0

    def wait(self) -> int:
        return 0  # not our child: its exit status is its parent's to collect


class CannotRun(Exception):
    """The watched command cannot start: a one-line reason."""


def run_capture(args: argparse.Namespace, open_source: SourceFactory = Sniffer,
                clock: Callable[[], float] = time.time) -> int:
    """The whole capture: open, run, annotate, save, summarise, judge; an exit code.

    ``open_source`` opens the packets (a Sniffer on the interface); ``clock`` is the
    capture's clock. Tests pass a file's packets and their time.
    """
    plan = plan_capture(args)
    session = _Session(args, plan)  # its output options fail here, before the socket opens
    try:
        if plan.write:
            check_writable(plan.write)  # before the socket: the same check as replay's
        source = open_source(args.interface, plan.expression, args.snaplen,
                             args.buffer_size << 10)
    except NoPrivilegeError as e:
        print(f"rawinspect: {e}", file=sys.stderr)
        return EXIT_NOPRIV
    except (SnifferError, CaptureWriteError) as e:
        print(f"rawinspect: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME
    with ExitStack() as stack:  # undone in reverse: programs, file, trace, signals, socket
        stack.callback(source.close)
        stop = StopFlag()
        stack.callback(stop.install())
        try:
            return session.run(source, stop, stack, clock)
        except (CaptureWriteError, CannotRun) as e:
            print(f"rawinspect: error: {e}", file=sys.stderr)
            return EXIT_RUNTIME


class _Session:
    """One capture: its output, what it keeps for the verdict, and what it started."""

    def __init__(self, args: argparse.Namespace, plan: Plan) -> None:
        self.args = args
        self.plan = plan
        self.stats = Stats(dropped=0)
        self.seen: list[Annotation] = []  # everything, for the verdict and the verification
        self.comments: dict[int, str] = {}
        self.calls: list[Call] = []  # every recorded call, for the verdict and --report
        self.datagrams: list[Datagram] = []  # every UDP datagram, for the verdict
        self.left_behind: list[dict[str, Any]] = []
        wanted = plan.scenario is not None or args.verify or args.annotate
        self.output = Output(args, self.stats, live=True, tap=self._tap if wanted else None,
                             calls_tap=self.calls.extend,
                             datagrams_tap=self.datagrams.extend)
        self.trace: KernelTrace | None = None
        self.scenario_run: ScenarioRun | None = None
        self.child: Program | None = None
        self.recording: Recording | None = None

    def _tap(self, anns: list[Annotation]) -> None:
        if self.plan.scenario is not None or self.trace is not None:
            self.seen.extend(anns)
        if self.args.annotate:
            self.comments.update((a.seg.frame, comment(a)) for a in anns)

    def run(self, source: PacketSource, stop: StopFlag, stack: ExitStack,
            clock: Callable[[], float]) -> int:
        """Start the trace, the file and the programs; capture; report; an exit code."""
        args, plan = self.args, self.plan
        self.trace = _start_trace(plan.ports) if args.verify else None
        if self.trace is not None:
            stack.callback(self.trace.close)
        call_trace = None
        if (plan.scenario is not None or plan.program) and not args.no_calls:
            from .recording import start_recording
            call_trace = start_recording()
            if call_trace is not None:
                stack.callback(call_trace.close)
        writer = None
        if plan.write:
            writer = PcapWriter(plan.write, source.linktype, args.snaplen)
            stack.callback(_close_quietly, writer)
        self.output.describe(f"capture {plan.describe()}", plan.write, args.interface,
                             plan.expression)
        tracker = self.output.tracker(call_trace is not None)
        sink = self.output.sink
        if call_trace is not None:
            from .recording import Recording
            self.recording = Recording(call_trace, self.output, writer, tracker, self.stats,
                                       plan.program and not args.all_traffic, clock)
            sink = self.recording.sink
        if args.report:
            save_report(args.report, args.scenario or "", {}, None)  # fail early, not after
        print(f"rawinspect: capturing on {args.interface} ({plan.describe()}), filter "
              f"{plan.expression!r}" + (f", saving to {plan.write}" if plan.write else ""),
              file=sys.stderr)
        self._start_programs(stack, call_trace)
        scenario = plan.scenario
        limits = Limits(args.count, args.duration or (scenario.timeout if scenario else None),
                        args.linger)
        later = self.output.writes_file  # a report file is drawn last: it shows the verdict
        try:
            udp = Datagrams(self.recording.timeline.add_datagrams if self.recording
                            else self.output.sink_datagrams)
            reason = capture_loop(source, writer, tracker, sink, self.stats, limits, stop,
                                  self.child, self._each_round, clock, udp,
                                  None if self.recording else self.output.retire)
            if self.recording is not None:
                self.recording.finish()
        except BaseException:
            later = False
            raise
        finally:
            if not later:
                self.output.close()
        code = self.output.print_summaries(end=clock())
        self._report_left_behind(writer)
        trace = self.trace
        disagree = _report_verification(trace, self.seen, args) if trace is not None else 0
        self._report_calls()
        if writer is not None:
            writer.close()
            if args.annotate and plan.write:
                write_annotated(plan.write, plan.write, self.comments,
                                [*self.calls, *({"kind": SOCKET, **r} for r in self.left_behind)])
        self.output.closing_line()
        programs = self._programs_code(reason)
        if later:
            self.output.close()
        elif plan.scenario is not None and plan.write:
            self._scenario_report(plan)
        if stop.signum:
            return 128 + stop.signum
        return programs or code or (EXIT_RUNTIME if disagree and args.strict else EXIT_OK)

    def _each_round(self) -> None:
        """After each round of packets: the kernel's state changes and the calls."""
        if self.trace is not None:
            self.trace.read()
        if self.recording is not None:
            self.recording.each_round()

    def _start_programs(self, stack: ExitStack, call_trace: CallTrace | None) -> None:
        """The scenario's programs or the command, held at a gate until their calls are
        traced; stopped when the capture ends."""
        plan = self.plan
        gate = Gate() if call_trace is not None and plan.pid is None else None
        if gate is not None:
            stack.callback(gate.close)
        wrap = gate.wrap if gate is not None else None
        fds = gate.pass_fds if gate is not None else ()
        if plan.scenario is not None:
            from ..scenarios.runner import ScenarioRun
            run = self.scenario_run = ScenarioRun(plan.scenario, plan.scenario.host,
                                                  plan.ports, wrap, fds)
            self.child = run.proc
            stack.callback(run.stop)
        elif plan.command:
            try:
                child = self.child = start_command(plan.command, self.args.as_root, wrap, fds)
            except OSError as e:
                raise CannotRun(f"cannot run {plan.command[0]!r}: {e.strerror or e}") from None
            stack.callback(_end_child, child)
        if gate is not None and call_trace is not None and self.child is not None:
            gate.open(self.child.pid, call_trace.follow)
        if plan.pid is not None and call_trace is not None:
            call_trace.follow_running(plan.pid)
            self.child = _Running(plan.pid)

    def _scenario_report(self, plan: Plan) -> None:
        """A scenario's HTML report beside its capture: the lesson to open in a browser."""
        from ..render.html import HtmlRenderer, ReportInfo
        stats, out = self.stats, self.output
        info = ReportInfo(f"capture {plan.describe()}", plan.write, self.args.interface,
                          plan.expression, stats.packets, stats.dropped, out.verdict_lines,
                          out.verdict_ok)
        report = HtmlRenderer(os.path.splitext(plan.write or "")[0] + ".html", info,
                              self.args.msl)
        streams: list[list[Annotation | Call | Datagram]] = [
            list(self.seen), list(self.calls), list(self.datagrams)]
        write_rows(report, heapq.merge(*streams, key=_row_time))
        report.close()

    def _ports(self) -> list[int]:
        """The captured ports: the scenario's, else the traced programs' own sockets'."""
        if self.plan.ports:
            return self.plan.ports
        return sorted(self.recording.timeline.linker.own_ports) if self.recording else []

    def _report_left_behind(self, writer: PcapWriter | None) -> None:
        """The sockets still alive on the captured ports, with each state's lesson;
        saved with the packets, so that replay shows them too."""
        from ..sources.sockets import SocketsUnavailable, fin_timeout, tcp_sockets
        from ..views.left_behind import as_dict
        ports = self._ports()
        if not ports:
            return
        try:
            sockets = tcp_sockets(ports)
        except SocketsUnavailable as e:
            print(f"rawinspect: sockets left behind unavailable: {e}", file=sys.stderr)
            return
        timeout = fin_timeout()
        self.left_behind = [as_dict(s, timeout) for s in sockets]
        if writer is not None and self.left_behind:
            writer.write_calls([{"kind": SOCKET, **r} for r in self.left_behind])
        self.output.left_behind(self.left_behind)

    def _report_calls(self) -> None:
        """Message boundaries and the trace's losses, after the summaries."""
        if self.recording is not None:
            self.output.report(self.recording.report_lines())
            self.recording.warn_lost()

    def _programs_code(self, reason: str) -> int:
        """The scenario's verdict, or the command's exit status if it ended on its own."""
        if self.scenario_run is not None:
            return _judge(self.scenario_run, self.seen, self.args, self.output,
                          self.calls if self.recording else None, self.left_behind,
                          self.datagrams)
        if self.child is not None and reason == "program ended":
            return self.child.wait()
        return EXIT_OK


def _close_quietly(writer: PcapWriter) -> None:
    """Close the file on the way out of an error; the first error is the one reported."""
    try:
        writer.close()
    except CaptureWriteError:
        pass


def _end_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
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


def start_command(command: list[str], as_root: bool,
                  wrap: Callable[[list[str]], list[str]] | None = None,
                  pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """Start COMMAND (``wrap``ped: the call trace's gate), as the user who ran sudo
    unless ``as_root``."""
    if not shutil.which(command[0]) and not os.path.exists(command[0]):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory")
    argv = wrap(command) if wrap is not None else command
    user = None if as_root else _invoking_user()
    if user is None:
        return subprocess.Popen(argv, pass_fds=pass_fds)
    return subprocess.Popen(argv, user=user[0], group=user[1], extra_groups=[],
                            pass_fds=pass_fds)


def _row_time(row: Annotation | Call | Datagram) -> float:
    """When a row of the timeline happened: a segment's or datagram's capture time, a
    call's place (``Call.at``)."""
    if isinstance(row, Annotation):
        return row.seg.ts
    return row.at if isinstance(row, Call) else row.ts


def _judge(run: ScenarioRun, seen: list[Annotation], args: argparse.Namespace,
           output: Output, calls: list[Call] | None, left_behind: list[dict[str, Any]],
           datagrams: list[Datagram]) -> int:
    """Print the programs' report and the verdict (the calls' expectations too, or, with
    ``calls`` None, that they were not checked); exit 1 unless every expectation held."""
    from ..scenarios.check import verify
    scenario = run.scenario
    report = run.report()
    verdict = verify(scenario.expect, seen, report, calls, datagrams)
    out = sys.stdout if args.format in ("table", "ladder") else sys.stderr
    print(f"\nscenario {scenario.name}: {scenario.summary}", file=out)
    for line in report.get("info", []):
        print(f"  programs: {line}", file=out)
    for line in verdict.lines():
        print(f"  {line}", file=out)
    output.verdict(verdict.lines(), verdict.ok)
    if args.report:
        save_report(args.report, scenario.name, report, verdict, calls, left_behind)
    return EXIT_OK if verdict.ok else EXIT_RUNTIME


def save_report(path: str, name: str, report: dict[str, Any], verdict: Verdict | None,
                calls: list[Call] | None = None,
                left_behind: list[dict[str, Any]] | None = None) -> None:
    """The programs' report, the verdict, the recorded calls (null: not recorded) and the
    sockets left behind, as JSON (read back by the tests)."""
    try:
        with open(path, "w") as f:
            json.dump({"scenario": name, "programs": report,
                       "ok": verdict.ok if verdict else None,
                       "verdict": verdict.lines() if verdict else [],
                       "calls": None if calls is None else [c.as_dict() for c in calls],
                       "left_behind": left_behind or []}, f, indent=1)
            f.write("\n")
    except OSError as e:
        raise CaptureWriteError(f"--report {path}: {e.strerror or e}") from None
    give_to_invoking_user(path)
