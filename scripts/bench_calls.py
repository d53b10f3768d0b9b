"""What recording the programs' calls costs them: a program making socket calls as fast
as it can (about 50,000 to 100,000 per second in Python on loopback), timed by itself,

  - alone;
  - under ``rawinspect capture --no-calls -- PROG`` (the packets only);
  - under ``rawinspect capture -- PROG`` (packets and calls, the kernel's tracepoints);
  - under ``strace -f`` with the same calls traced (the other way to record them).

Each run prints the program's own elapsed and kernel (system) time per call: the
tracepoints run in the program's own context, so their cost shows in its kernel time.
The tables give both and what each setting adds, the CPU time of the whole command
(rawinspect or strace included) and the calls recorded, once paced to 50,000 calls per
second and once as fast as the program can. Run as root. Bounded:
``--calls`` per run (default 200,000), ``--runs`` runs per setting (default 3).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

PROGRAM = r'''
import resource, socket, sys, time
n, rate = int(sys.argv[1]) // 2, float(sys.argv[2])
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
step = 2 / rate if rate else 0.0
sys0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
t = due = time.perf_counter()
for _ in range(n):
    c.send(b"x"); s.recv(1)
    due += step
    while time.perf_counter() < due:   # paced to `rate` calls per second (user time)
        pass
dt = time.perf_counter() - t
kernel = resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0
c.close(); s.close(); l.close()
print(f"ELAPSED {dt:.6f} SYS {kernel:.6f} CALLS {2 * n}")
'''
STRACE_CALLS = "trace=socket,bind,listen,connect,accept4,sendto,recvfrom,close,shutdown,setsockopt"


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str, float]:
    """Run once: the program's own seconds and kernel seconds, its calls, the stderr, and
    the CPU seconds of the whole command tree (rawinspect or strace included)."""
    before = os.times()
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    after = os.times()
    m = re.search(r"ELAPSED (\S+) SYS (\S+) CALLS (\d+)", res.stdout)
    if m is None:
        sys.exit(f"bench_calls: no timing from {' '.join(cmd[:4])}…: {res.stderr[-500:]}")
    cpu = (after.children_user - before.children_user
           + after.children_system - before.children_system)
    return float(m.group(1)), float(m.group(2)), int(m.group(3)), res.stderr, cpu


def measure(settings: dict[str, list[str]], rate: int, runs: int, env: dict[str, str]
            ) -> list[tuple[str, float, float, float, str]]:
    """Per setting, medians: µs per call (elapsed, kernel), CPU seconds, calls recorded."""
    rows = []
    for name, cmd in settings.items():
        times, kernel, cpus, recorded = [], [], [], ""
        for _ in range(runs):
            dt, sys_s, calls, err, cpu = run(cmd + [str(rate)], env)
            times.append(dt / calls * 1e6)
            kernel.append(sys_s / calls * 1e6)
            cpus.append(cpu)
            m = re.search(r"(\d+) calls of the programs", err)
            lost = re.search(r"(\d+) trace events lost", err)
            recorded = (m.group(1) if m else "") + (f" ({lost.group(1)} events lost)"
                                                      if lost else "")
        rows.append((name, statistics.median(times), statistics.median(kernel),
                     statistics.median(cpus), recorded))
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=200_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--rates", default="50000,0",
                   help="calls per second the program keeps to (0: as fast as it can)")
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_calls: run as root (capture and the kernel's tracing need it)")
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(PROGRAM)
    prog = [sys.executable, f.name, str(args.calls)]
    ri = [sys.executable, "-m", "rawinspect", "capture", "-f", "tcp", "--linger", "0.3",
          "--conns"]
    settings = {"alone": prog, "capture --no-calls": ri + ["--no-calls", "--"] + prog,
                "capture (calls)": ri + ["--"] + prog}
    if shutil.which("strace"):
        settings["strace -f"] = ["strace", "-f", "-qq", "-o", os.devnull, "-e",
                                 STRACE_CALLS] + prog
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            rows = measure(settings, rate, args.runs, env)
            base, base_k = rows[0][1], rows[0][2]
            print(f"\n{args.calls} socket calls per run, "
                  f"{f'paced to {rate} per second' if rate else 'as fast as it can'}, "
                  f"median of {args.runs} runs")
            print(f"{'setting':20} {'µs/call':>8} {'added':>7} {'kernel µs':>9} {'added':>7} "
                  f"{'CPU s':>6}  calls recorded")
            for name, us, k, cpu, recorded in rows:
                print(f"{name:20} {us:8.2f} {us - base:+7.2f} {k:9.2f} {k - base_k:+7.2f} "
                      f"{cpu:6.2f}  {recorded}")
    finally:
        os.unlink(f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
