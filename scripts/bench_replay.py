#!/usr/bin/env python3
"""Replay benchmark: rawinspect's modes against tshark (and tcptrace) on the same capture,
in the same run.

Writes a deterministic capture of one of scripts/traffic_mix.py's mixes (``realistic``, the
default, or ``simple``, the first benchmark's), then times each mode of
``rawinspect replay -j 1 FILE > /dev/null`` (one core): jsonl, the default table, --conns, zeek,
--findings-only, and tracking alone (every segment filtered out by --port); and the
references on the same file: ``tshark -T fields ... -e tcp.analysis.flags`` for the
per-segment modes, ``tshark -q -z conv,tcp`` for the per-connection ones, and
``tcptrace -n -l`` (a C program) where installed. For each: seconds, packets per second,
the ratio to its tshark reference, and peak RSS (the best of ``--runs`` runs, and the
range). With ``--jobs N``, each mode is timed again with ``replay -j N``. Also times a
10-packet file (start-up cost). Not part of the test suite.

It measures the rawinspect that ``--python`` (default: this Python) has installed
(``python -P``: not the sources beside it) and says which build that is: compiled by
setup.py, or pure Python.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from traffic_mix import MIXES, write_pcap as write_mix  # noqa: E402  (beside this script)

# name, extra options, the reference it is compared with ("seg" or "conv")
MODES = (("jsonl", ["--format", "jsonl"], "seg"),
         ("table", [], "seg"),
         ("conns", ["--conns"], "conv"),
         ("zeek", ["--format", "zeek"], "conv"),
         ("findings-only", ["--findings-only"], "conv"),
         ("tracking only", ["--port", "1"], "seg"))


def write_pcap(path: Path, packets: int, seed: int, concurrent: int) -> None:
    """The simple mix with ``concurrent`` connections open at once (tests/test_build.py)."""
    write_mix(path, "simple", packets, seed, concurrent)


def write_apart(path: Path, mix: str, packets: int, seed: int) -> None:
    """Write the capture in a process of its own. A child's peak RSS (``ru_maxrss``) starts
    from the peak of the process that started it, so this one must stay small: making
    the simple mix in here took it to 56 MB, and every smaller peak read as 56 MB."""
    writer = multiprocessing.get_context("spawn").Process(
        target=write_mix, args=(path, mix, packets, seed))
    writer.start()
    writer.join()
    if writer.exitcode:
        raise SystemExit(f"writing {path} failed")


def own_peak() -> int:
    """This process's peak RSS in KiB: the smallest peak a child can show."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def timed(cmd: list[str]) -> tuple[float, int, float] | None:
    """Wall seconds, peak RSS (KiB) and CPU seconds (user + system: steadier than wall
    time on a loaded machine) of a command whose output goes to /dev/null; None if it
    fails (an option this build does not have)."""
    t0 = time.perf_counter()
    pid = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status):
        return None
    return elapsed, usage.ru_maxrss, usage.ru_utime + usage.ru_stime


def which_rawinspect(python: str) -> list[str]:
    """The command of the rawinspect ``python`` has installed; says which build it is.
    ``-P``: not the sources of the current directory."""
    cmd = [python, "-P", "-m", "rawinspect"]
    version = subprocess.run(cmd + ["--version"], capture_output=True, text=True)
    if version.returncode:
        raise SystemExit(f"rawinspect is not installed for {python}: run scripts/setup.sh "
                         "and use .venv/bin/python")
    print(f"measuring {version.stdout.strip()} ({python})", flush=True)
    return cmd


def measure(name: str, cmd: list[str], runs: int, packets: int,
            ref: float | None) -> float | None:
    """Time ``cmd`` ``runs`` times; print one row; the best seconds (None if it failed)."""
    results = [timed(cmd) for _ in range(runs)]
    if any(r is None for r in results):
        print(f"  {name:<16} not available in this build")
        return None
    secs = sorted(r[0] for r in results if r)
    rss = max(r[1] for r in results if r) / 1024
    cpu = min(r[2] for r in results if r)
    best, worst = packets / secs[0], packets / secs[-1]
    spread = f"{worst:>11,.0f}-{best:<11,.0f}" if runs > 1 else f"{best:>11,.0f}{'':12}"
    ratio = f"{secs[0] and ref / secs[0]:6.2f}x" if ref else "      -"
    print(f"  {name:<16} {secs[0]:7.2f} s  {spread} pkts/s  {ratio}  {rss:6.0f} MB  {packets / cpu:>11,.0f}", flush=True)
    return secs[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mix", choices=tuple(MIXES), default="realistic")
    ap.add_argument("--packets", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1, help="runs of each command (best shown)")
    ap.add_argument("--python", default=sys.executable,
                    help="the Python whose installed rawinspect is measured")
    ap.add_argument("--modes", default=",".join(m for m, _, _ in MODES),
                    help="comma-separated modes to time")
    ap.add_argument("--no-refs", action="store_true", help="time rawinspect only")
    ap.add_argument("--keep", metavar="FILE", help="write the capture here and keep it "
                                                   "(reused if it exists)")
    ap.add_argument("--jobs", type=int, default=1, metavar="N",
                    help="also time each mode with replay -j N (N > 1; peak RSS is then "
                         "the largest process's: one job's)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rawinspect-bench-"))
    path = Path(args.keep) if args.keep else tmp / "bench.pcap"
    if not path.exists():
        t0 = time.perf_counter()
        write_apart(path, args.mix, args.packets, args.seed)
        print(f"wrote {path} in {time.perf_counter() - t0:.1f} s")
    print(f"capture: {path} ({args.mix} mix, {args.packets:,} packets, "
          f"{path.stat().st_size / 1e6:.0f} MB)")
    small = tmp / "small.pcap"
    write_apart(small, args.mix, 10, args.seed)
    ours = which_rawinspect(args.python)
    ours += ["replay", "-q"]
    print(f"  {'mode':<16} {'best':>9}  {'packets/s (range)':^23}         ratio   peak RSS  pkts/CPU-s")
    refs: dict[str, float | None] = {"seg": None, "conv": None}
    tshark, tcptrace = shutil.which("tshark"), shutil.which("tcptrace")
    if args.no_refs:
        tshark = tcptrace = None
    if tshark:
        refs["seg"] = measure("tshark fields", [tshark, "-r", str(path), "-T", "fields",
                                                "-e", "frame.number", "-e", "tcp.flags",
                                                "-e", "tcp.analysis.flags"],
                              args.runs, args.packets, None)
        refs["conv"] = measure("tshark conv,tcp", [tshark, "-r", str(path), "-q", "-z",
                                                   "conv,tcp"], args.runs, args.packets, None)
    elif not args.no_refs:
        print("  tshark not installed: no ratios (apt-get install tshark)")
    if tcptrace:
        measure("tcptrace -n -l", [tcptrace, "-n", "-l", str(path)], args.runs, args.packets,
                refs["conv"])
    wanted = args.modes.split(",")
    for name, opts, ref in MODES:
        if name in wanted:
            measure(name, ours + ["-j", "1"] + opts + [str(path)], args.runs, args.packets,
                    refs[ref])
            if args.jobs > 1:
                measure(f"{name} -j {args.jobs}", ours + ["-j", str(args.jobs)] + opts
                        + [str(path)], args.runs, args.packets, refs[ref])
    small_secs = [t[0] for t in (timed(ours + ["--format", "jsonl", str(small)])
                                 for _ in range(3)) if t]
    if small_secs:
        print(f"  a 10-packet file (start-up): {min(small_secs):.3f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"peak RSS: a child's cannot read below this script's own, {own_peak() / 1024:.0f} MB")
    print("ratio: tshark's seconds / rawinspect's (above 1: rawinspect is faster); per-segment "
          "modes against tshark fields, per-connection ones against tshark conv,tcp")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
