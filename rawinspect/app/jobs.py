"""``replay --jobs N``: one capture file annotated by N processes, each a shard of its
connections, merged into the output one process would print.

Each worker reads the whole file and decodes the segments whose 4-tuple (either
direction) hashes to its shard, so that a connection and every later connection on the
same ports stay in one worker, and runs the ordinary pipeline on them: tracker, Wireshark's
analysis, the output's sink, the retirement of finished connections. A worker writes its
per-segment lines to a file of its own, and hands back, pickled, its connections' first
frames and its counts. Its connection summaries, and its connections' findings and
origins (what the rules over one connection found, and what ``connect-same-port`` reads),
go to files of their own, in blocks. The parent numbers the connections in the order of
their first frames (as one tracker would), merges the lines by frame number with those
numbers, takes the findings and origins as retired connections' (on disk once there are
thousands), runs the rules over the whole run, and prints the findings, the summaries
(merged as they are read) and the closing line. UDP datagrams all go to the first worker.

Only the outputs that merge this way run in parallel: jsonl, ``--conns``, zeek and
``--findings-only``, without display filters, ``-c``, ``--explain``, ``-w`` or saved
calls. Anything else, or a small file, runs as one job, which prints the same bytes.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import os
import pickle
import shutil
import signal
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, Callable, Final, Iterable, Iterator

from ..sources.decode import Decoder
from ..views.findings import Finding, Origin
from ..views.spill import read_blocks, write_blocks
from ..views.summary import ConnSummary, uid_of
from ..views.udp_flows import UdpFlow
from .output import Output
from .pipeline import Datagrams, Stats, read_segments, run

AUTO_BYTES = 32 << 20     # --jobs auto: files at least this large run in parallel
SUMMARY_BLOCK: Final = 256   # summaries a worker pickles together (the parent holds one each)


def usable(args: argparse.Namespace) -> str:
    """Why this replay cannot run in parallel ("" when it can)."""
    for option, given in (("--conn", args.conn), ("--host", args.host), ("--port", args.port),
                          ("-c", args.count), ("--explain", args.explain),
                          ("-w", args.write)):
        if given:
            return f"{option} is given"
    if args.format != "jsonl" and not (args.conns or args.findings_only
                                       or args.format == "zeek"):
        return f"--format {args.format} is drawn in one piece"
    return ""


def jobs_wanted(args: argparse.Namespace) -> int:
    """How many jobs: -j N, or for "auto" the cores for a large file whose output is made
    per connection (``--conns``, zeek, ``--findings-only``), and 1 for a small file or the
    segments' jsonl (the parent merges its lines alone: two jobs were slower than one)."""
    if args.jobs != "auto":
        return int(args.jobs)
    if args.format == "jsonl" and not (args.conns or args.findings_only):
        return 1
    try:
        large = os.path.getsize(args.file) >= AUTO_BYTES
    except OSError:
        return 1
    return len(os.sched_getaffinity(0)) if large else 1


@dataclass
class ShardResult:
    """What a worker hands back besides its lines."""
    first: dict[int, int] = field(default_factory=dict)     # its conn → its first frame
    connections: int = 0
    shown: int = 0
    end: float = 0.0                  # the latest segment's or datagram's time (of the file)
    stats: Stats | None = None        # the file's counts (the first worker's)
    udp: list[UdpFlow] = field(default_factory=list)
    error: str = ""


def _work(args: argparse.Namespace, shard: int, jobs: int, tmp: str) -> ShardResult:
    """One worker's run: its per-segment lines written to shard.lines in ``tmp``, its
    connection summaries to shard.summaries, its findings and origins to shard.findings
    and shard.origins."""
    result = ShardResult()
    stats = Stats()
    with open(os.path.join(tmp, f"{shard}.lines"), "w", buffering=1 << 20) as out:
        sys.stdout = out
        output = Output(args, stats, live=False)
        first = result.first

        def sink(anns: list[Any]) -> bool:
            for a in anns:
                if a.conn not in first:
                    first[a.conn] = a.seg.frame
            return output.sink(anns)

        udp = Datagrams(output.sink_datagrams)
        segments = read_segments(args.file, stats, udp.add if shard == 0 else None,
                                 Decoder(shard, jobs))
        run(segments, output.tracker(False), sink, stats, udp, output.retire)
        output.close()
    result.connections, result.shown, result.end = stats.connections, stats.shown, stats.latest
    result.stats = stats if shard == 0 else None
    if output.findings_wanted:
        output.diagnoser.retire_all()
        for name, made in zip(("findings", "origins"), output.diagnoser.made()):
            with open(os.path.join(tmp, f"{shard}.{name}"), "wb") as f:
                write_blocks(f, made, SUMMARY_BLOCK)
    if output.summaries is not None:
        output.summaries.end = result.end
        with open(os.path.join(tmp, f"{shard}.summaries"), "wb") as f:
            write_blocks(f, output.summaries.each(), SUMMARY_BLOCK)
        result.udp = output.summaries.udp.rows
    return result


def _renumbered_summaries(f: BinaryIO, number: dict[int, int]) -> Iterator[ConnSummary]:
    """A worker's summaries read back a block at a time, numbered as the run numbers its
    connections; the file is closed once read."""
    with f:
        s: ConnSummary
        for s in read_blocks(f):
            s.conn = number[s.conn]
            s.uid = uid_of(s.start, s.client, s.server, s.conn)
            yield s


def _renumbered_findings(f: BinaryIO, number: dict[int, int]
                         ) -> Iterator[tuple[int, list[Finding]]]:
    """A worker's findings (a list per connection) read back, numbered as the run numbers
    its connections; the file is closed once read."""
    with f:
        conn: int
        found: list[Finding]
        for conn, found in read_blocks(f):
            n = number[conn]
            yield n, [replace(x, conn=n) for x in found]


def _renumbered_origins(f: BinaryIO, number: dict[int, int]) -> Iterator[Origin]:
    """A worker's origins read back, numbered as the run numbers its connections."""
    with f:
        o: Origin
        for o in read_blocks(f):
            yield o._replace(conn=number[o.conn])


def _fork(args: argparse.Namespace, shard: int, jobs: int, tmp: str) -> int:
    """Start worker ``shard``; its pid. It writes shard.lines and shard.pickle in ``tmp``."""
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child never returns into the parent's code, whatever happens (Ctrl-C)
        try:
            result = _work(args, shard, jobs, tmp)
            code = 0
        except Exception as e:  # the parent then runs one job, which says what is wrong
            result = ShardResult(error=f"{type(e).__name__}: {e}")
        with open(os.path.join(tmp, f"{shard}.pickle"), "wb") as f:
            pickle.dump(result, f, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        os._exit(code)


def replay_sharded(args: argparse.Namespace, jobs: int, output: Output) -> bool:
    """Run the workers, then print their merged lines to stdout and set up ``output``
    (stats, findings' facts, summaries) for the end of the run. False, with nothing
    printed, when a worker failed (a damaged file: one job then says where)."""
    with tempfile.TemporaryDirectory(prefix="rawinspect-jobs-") as tmp:
        pids = [_fork(args, k, jobs, tmp) for k in range(jobs)]
        with _ending(pids):
            for pid in pids:
                os.waitpid(pid, 0)
        results = []
        for k in range(jobs):
            with open(os.path.join(tmp, f"{k}.pickle"), "rb") as f:
                results.append(pickle.load(f))
        if any(r.error for r in results):
            return False
        numbers = _numbers(results)
        _merge_lines([os.path.join(tmp, f"{k}.lines") for k in range(jobs)], numbers)
        if output.findings_wanted:
            output.diagnoser.adopt(
                (x for k in range(jobs) for x in _renumbered_findings(
                    open(os.path.join(tmp, f"{k}.findings"), "rb"), numbers[k])),
                (o for k in range(jobs) for o in _renumbered_origins(
                    open(os.path.join(tmp, f"{k}.origins"), "rb"), numbers[k])))
        # Opened now, read at the end of the run (an open file outlives the directory).
        summaries: list[BinaryIO] = (
            [open(os.path.join(tmp, f"{k}.summaries"), "rb") for k in range(jobs)]
            if output.summaries is not None else [])
    _set_up(output, results, numbers, summaries)
    return True


@contextmanager
def _ending(pids: Iterable[int]) -> Iterator[None]:
    """On the way out by an exception (Ctrl-C, a closed pipe), end the workers still
    running: ours, by pid."""
    try:
        yield
    except BaseException:
        for pid in list(pids):
            try:
                os.kill(pid, signal.SIGTERM)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        raise


def _numbers(results: list[ShardResult]) -> list[dict[int, int]]:
    """Each worker's connection numbers → the run's: in the order of their first frames."""
    starts = sorted((frame, k, conn) for k, r in enumerate(results)
                    for conn, frame in r.first.items())
    numbers: list[dict[int, int]] = [{} for _ in results]
    for n, (_, k, conn) in enumerate(starts, 1):
        numbers[k][conn] = n
    return numbers


def _frame(line: str) -> int:
    """The frame number of a jsonl line (a segment's or a datagram's)."""
    start = line.index('"frame":') + 8
    return int(line[start:line.index(",", start)])


def _renumbered(lines: Iterator[str], numbers: dict[int, int]) -> Iterator[tuple[int, str]]:
    """A worker's lines with their frame numbers, its connection numbers made the run's."""
    for line in lines:
        at = line.find(',"conn":', 0, 64)
        if at >= 0:
            end = line.index(",", at + 8)
            line = f"{line[:at + 8]}{numbers[int(line[at + 8:end])]}{line[end:]}"
        yield _frame(line), line


def _merge_lines(paths: list[str], numbers: list[dict[int, int]]) -> None:
    """Every worker's lines, merged by frame, to stdout."""
    files = [open(p) for p in paths]
    try:
        write = sys.stdout.write
        for _, line in heapq.merge(*(_renumbered(f, n) for f, n in zip(files, numbers))):
            write(line)
    finally:
        for f in files:
            f.close()


def _set_up(output: Output, results: list[ShardResult], numbers: list[dict[int, int]],
            summaries: list[BinaryIO]) -> None:
    """The run's counts and summaries (from the workers' ``summaries`` files, merged as
    they are read), from the workers'."""
    stats = output.stats
    first = results[0].stats
    assert first is not None
    stats.packets, stats.segments, stats.datagrams = first.packets, first.segments, first.datagrams
    stats.skipped = first.skipped
    stats.connections = sum(r.connections for r in results)
    stats.shown = sum(r.shown for r in results)
    if output.summaries is not None:
        # Each worker's in its connections' order, which the run's numbers keep.
        output.summaries.merged = heapq.merge(
            *(_renumbered_summaries(f, number) for f, number in zip(summaries, numbers)),
            key=lambda s: s.conn)
        output.summaries.udp.rows = results[0].udp


ReplayOne = Callable[[argparse.Namespace, str], int]


def file_header(args: argparse.Namespace, path: str, first: bool) -> str:
    """What leads a file's output when there are several: a ``{"kind": "file"}`` record in
    jsonl, ``==> FILE <==`` (as ``head`` and ``tail`` write it, after a blank line but for
    the first) in the text formats, nothing in zeek (each file is a conn.log of its own)."""
    if args.format == "zeek":
        return ""
    if args.format == "jsonl":
        return json.dumps({"kind": "file", "path": path}) + "\n"
    return f"{'' if first else chr(10)}==> {path} <==\n"


def replay_files(args: argparse.Namespace, files: list[str], jobs: int,
                 replay_one: ReplayOne) -> int:
    """Each file a capture of its own, ``jobs`` at a time in worker processes; the outputs
    in the order given, each led by its header; the worst exit code."""
    if jobs <= 1:
        return max(_one_file(args, path, i == 0, replay_one) for i, path in enumerate(files))
    codes = []
    with tempfile.TemporaryDirectory(prefix="rawinspect-files-") as tmp:
        running: dict[int, int] = {}     # pid → file index
        done: dict[int, int] = {}        # file index → exit code
        started = 0
        with _ending(running):
            for i in range(len(files)):
                while started < len(files) and len(running) < jobs:
                    running[_fork_file(args, files[started], started, tmp, replay_one)] = started
                    started += 1
                while i not in done:
                    pid, status = os.wait()
                    if pid in running:
                        done[running.pop(pid)] = os.waitstatus_to_exitcode(status)
                _print_file(tmp, i)
                codes.append(done[i])
    return max(codes)


def _one_file(args: argparse.Namespace, path: str, first: bool, replay_one: ReplayOne) -> int:
    """One of several files, in this process: its header, its output."""
    mine = copy.copy(args)
    mine.file, mine.jobs = path, "1"
    sys.stdout.write(file_header(mine, path, first))
    code = replay_one(mine, f"{path}: ")
    sys.stdout.flush()
    return code


def _fork_file(args: argparse.Namespace, path: str, index: int, tmp: str,
               replay_one: ReplayOne) -> int:
    """Replay one file in a child whose stdout and stderr go to files in ``tmp``."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        with open(os.path.join(tmp, f"{index}.out"), "w") as out, \
                open(os.path.join(tmp, f"{index}.err"), "w") as err:
            sys.stdout, sys.stderr = out, err
            code = _one_file(args, path, index == 0, replay_one)
            err.flush()
    finally:
        os._exit(code)


def _print_file(tmp: str, index: int) -> None:
    """A finished child's output, then its messages."""
    for name, stream in (("out", sys.stdout), ("err", sys.stderr)):
        path = os.path.join(tmp, f"{index}.{name}")
        if os.path.exists(path):
            stream.flush()
            with open(path) as f:
                shutil.copyfileobj(f, stream)
    sys.stdout.flush()
