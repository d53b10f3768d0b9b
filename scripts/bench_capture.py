#!/usr/bin/env python3
"""Live capture speed: rawinspect's two packet readers and tcpdump, same run, same load.

A Python sender cannot produce more than about 30,000 segments/s here, so the load is
a synthetic connection (100-byte data segments one way, ACKs the other) injected on lo at
a set packet rate by ``scripts/inject.c`` (compiled with cc at start: sendmmsg on a
packet socket, batches due on a fixed schedule; it keeps 200,000 packets/s exactly here,
where tcpreplay delivered 125,000-163,000 of them), or by tcpreplay when there is no C
compiler (``--injector tcpreplay`` asks for it). Its IP checksums are left zero, so the kernel
drops each packet right after the capture point and answers nothing; every tool sees
exactly the injected packets. Each tool captures alone, its output going to a pipe; the
tool's own closing line gives packets captured and dropped by the kernel. Rates step up
until a tool drops packets. A real bulk transfer at 64 MB/s (64 KiB writes over a loopback
socket) is run once per tool as well.

The tools: ``ring`` is rawinspect reading the kernel's TPACKET_V3 ring (the default),
``recvmsg`` is rawinspect forced to one system call per packet (RAWINSPECT_NO_RING=1),
both annotating every segment as jsonl; ``tcpdump`` prints a line per packet (-l -tt),
``tcpdump-w`` writes to /dev/null (no output to time). The output delay is the time
from a packet's kernel timestamp to its line reaching the pipe's reader, measured for the
oldest line of every read of the pipe, so its maximum covers every line. Each trial also
gives the tool's CPU time per packet (user + system, after start-up), steadier than rates
on a busy machine.

Two figures per tool: the highest drop-free rate over the run, and the highest drop-free
rate at which every line came out within 10 ms of its packet. ``--repeat`` runs the whole
ladder again and prints ranges; the load average is printed before each rate, since the
machine is shared.

    sudo .venv/bin/python scripts/bench_capture.py [--seconds 10] [--rates 100000,...]

Needs root, tcpdump, and cc or tcpreplay (apt-get install tcpdump gcc). Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_replay import which_rawinspect

ROOT = Path(__file__).resolve().parent.parent
DROPS = re.compile(r"(\d+) packets dropped by kernel")
CAPTURED = re.compile(r"(\d+) packets captured")


def generate(port: int, rate: float, seconds: float, size: int) -> None:
    """Send ``size``-byte messages at ``rate`` per second for ``seconds`` (child process)."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen()
    c = socket.create_connection(("127.0.0.1", port))
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    a, _ = srv.accept()
    done = threading.Event()

    def drain() -> None:
        while a.recv(1 << 20):
            pass
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    msg = b"x" * size
    start = time.monotonic()
    sent = 0
    end = start + seconds
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * rate)
        for _ in range(min(due - sent, 10_000)):   # bounded burst per round
            c.send(msg)
            sent += 1
        if due <= sent:
            time.sleep(0.0005)
    c.close()
    done.wait(5)
    a.close()
    srv.close()
    print(json.dumps({"sent": sent, "seconds": time.monotonic() - start}))


def synthetic_pcap(path: Path, packets: int, port: int) -> None:
    """A connection's worth of data/ACK segments, 127.0.0.1:40000 ↔ 127.0.0.1:port."""
    import struct
    eth = b"\0" * 12 + b"\x08\x00"

    def frame(sport: int, dport: int, seq: int, ack: int, payload: int) -> bytes:
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 0x50, 0x18 if payload
                          else 0x10, 65535, 0, 0)
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40 + payload, 0, 0x4000, 64, 6, 0,
                         b"\x7f\0\0\x01", b"\x7f\0\0\x01")  # checksum 0: dropped
        return eth + ip + tcp + b"x" * payload

    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        cseq, sseq = 1000, 5000
        for i in range(packets):
            if i % 2 == 0:
                data = frame(40000, port, cseq, sseq, 100)
                cseq += 100
            else:
                data = frame(port, 40000, sseq, cseq, 0)
            f.write(struct.pack("<IIII", 0, i, len(data), len(data)) + data)


def build_injector(directory: Path) -> str:
    """Compile scripts/inject.c into ``directory``; its path."""
    exe = directory / "inject"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(ROOT / "scripts" / "inject.c")],
                   check=True, timeout=120)
    return str(exe)


def replay_load(pcap: Path, rate: float, injector: str | None) -> dict:
    """Inject the synthetic capture on lo at ``rate`` packets/s: with ``injector`` (the
    compiled inject.c), else with tcpreplay."""
    t0 = time.monotonic()
    if injector is not None:
        done = subprocess.run([injector, "lo", str(pcap), f"{rate:g}"], check=True,
                              capture_output=True, text=True, timeout=600)
        return {"seconds": json.loads(done.stdout)["seconds"]}
    subprocess.run(["tcpreplay", "-q", "-K", "--intf1=lo", f"--pps={rate:g}", str(pcap)],
                   check=True, capture_output=True, timeout=600)
    return {"seconds": time.monotonic() - t0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RAWINSPECT = [sys.executable, "-P", "-m", "rawinspect"]  # the installed build (-P: not ./)
TOOLS = ("ring", "recvmsg", "tcpdump", "tcpdump-w")
READY = ("capturing on", "listening on")  # each tool's first line once its socket is open
LINE_TS = {"ring": re.compile(rb'"ts":([0-9.]+)'), "recvmsg": re.compile(rb'"ts":([0-9.]+)'),
           "tcpdump": re.compile(rb"^([0-9]+\.[0-9]+) ")}
F_SETPIPE_SZ = 1031
STOP_WITHIN = 120.0  # seconds a tool has to end after SIGINT before it is killed


def tool_command(tool: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of one tool capturing ``tcp port PORT`` on lo."""
    env = dict(os.environ)
    env.pop("RAWINSPECT_NO_RING", None)
    if tool.startswith("tcpdump"):
        out = ["-w", "/dev/null"] if tool == "tcpdump-w" else ["-l", "-tt"]
        return ["tcpdump", "-i", "lo", "-n", *out, "-B", "65536", f"tcp port {port}"], env
    if tool == "recvmsg":
        env["RAWINSPECT_NO_RING"] = "1"
    return (RAWINSPECT + ["capture", "-f", f"tcp port {port}", "-T", "jsonl", "--color",
                          "never"], env)


class Delays:
    """Reads a tool's output pipe; for each read, how late its oldest complete line is."""

    def __init__(self, pipe: int, stamp: re.Pattern[bytes] | None) -> None:
        self.pipe, self.stamp = pipe, stamp
        self.delays: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        carry = b""
        while chunk := os.read(self.pipe, 1 << 20):
            now = time.time()
            nl = chunk.find(b"\n")
            if self.stamp is not None and nl >= 0:
                m = self.stamp.search(carry + chunk[:nl])
                if m:
                    self.delays.append(now - float(m.group(1)))
            carry = chunk[chunk.rfind(b"\n") + 1:] if nl >= 0 else carry + chunk

    def summary(self) -> dict:
        self.thread.join(10)
        d = sorted(self.delays)
        if not d:
            return {"delay_p50_ms": None, "delay_p99_ms": None, "delay_max_ms": None}
        return {"delay_p50_ms": 1000 * d[len(d) // 2],
                "delay_p99_ms": 1000 * d[min(len(d) - 1, len(d) * 99 // 100)],
                "delay_max_ms": 1000 * d[-1]}


def start_tool(tool: str, port: int) -> tuple[subprocess.Popen, Delays]:
    """Start a tool and wait until it says its socket is open; the process, its reader."""
    cmd, env = tool_command(tool, port)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    try:
        fcntl.fcntl(proc.stdout.fileno(), F_SETPIPE_SZ, 1 << 20)
    except OSError:
        pass  # a smaller pipe: the tool may wait for the reader sooner
    for _ in range(5):
        line = proc.stderr.readline().decode(errors="replace")
        if not line:
            raise SystemExit(f"{tool} did not start: {proc.stderr.read().decode()}")
        if any(word in line for word in READY):
            break
    time.sleep(0.3)
    return proc, Delays(proc.stdout.fileno(), LINE_TS.get(tool))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def trial(tool: str, rate: float, seconds: float, size: int, pcap: Path | None = None,
          port: int = 0, injector: str | None = None) -> dict:
    """One capture of one load (``pcap`` injected, see replay_load, or the bulk sender)."""
    port = port or free_port()
    proc, delays = start_tool(tool, port)
    startup = cpu_seconds(proc.pid)  # imports, filter compilation: not per packet
    if pcap is not None:
        sent = replay_load(pcap, rate, injector)
    else:
        gen = subprocess.run([sys.executable, __file__, "--generate", str(port), str(rate),
                              str(seconds), str(size)], capture_output=True, text=True,
                             timeout=seconds + 60)
        sent = json.loads(gen.stdout)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    watchdog = threading.Timer(STOP_WITHIN, proc.kill)  # a tool that ignores SIGINT
    watchdog.start()
    err = proc.stderr.read().decode(errors="replace")  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)  # the tool's CPU time: steadier than rates
    watchdog.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    captured = CAPTURED.search(err)
    dropped = DROPS.search(err)
    n = int(captured.group(1)) if captured else -1
    return {"tool": tool, "rate": rate, "seconds": sent["seconds"], "captured": n,
            "dropped": int(dropped.group(1)) if dropped else -1,
            "cpu_us": 1e6 * (usage.ru_utime + usage.ru_stime - startup) / n if n > 0 else 0.0,
            **delays.summary()}


def show(r: dict) -> None:
    pps = r["captured"] / r["seconds"] if r["seconds"] else 0
    lat = ""
    if r["delay_p50_ms"] is not None:
        lat = (f", output delay p50 {r['delay_p50_ms']:.1f} p99 {r['delay_p99_ms']:.1f} "
               f"max {r['delay_max_ms']:.1f} ms")
    print(f"  {r['tool']:10} offered {r['rate']:>9,.0f}/s: {r['captured']:>9,} packets "
          f"({pps:,.0f}/s), {r['dropped']:,} dropped, CPU {r['cpu_us']:.1f} µs/packet{lat}",
          flush=True)


def load() -> str:
    return "load average " + " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ladder(tools: list[str], rates: list[float], seconds: float, port: int,
           bulk: bool, injector: str | None) -> dict[str, tuple[float, float]]:
    """Step the rates up for every tool (each rate's capture file made once); per tool,
    (highest drop-free rate, highest drop-free rate with every line out within 10 ms)."""
    best = {t: (0.0, 0.0) for t in tools}
    going = list(tools)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"rawinspect-bench-{os.getpid()}.pcap"
    for rate in rates:
        if not going:
            break
        print(f"{rate:,.0f} packets/s offered ({load()}):", flush=True)
        synthetic_pcap(tmp, int(rate * seconds), port)
        try:
            for tool in list(going):
                r = trial(tool, rate, seconds, 100, tmp, port, injector)
                show(r)
                if r["dropped"] != 0 or r["captured"] < int(rate * seconds):
                    going.remove(tool)
                    continue
                pps = r["captured"] / r["seconds"]
                timely = r["delay_max_ms"] is not None and r["delay_max_ms"] <= 10
                best[tool] = (pps, pps if timely else best[tool][1])
        finally:
            tmp.unlink()
    if bulk:
        bulk_mb = 64 * 16 * 65536 / 1e6
        print(f"bulk transfer, {bulk_mb:.0f} MB/s in 64 KiB writes for {seconds:g} s "
              f"({load()}):", flush=True)
        for tool in tools:
            show(trial(tool, 64 * 16, seconds, 65536))
    return best


def span(values: list[float]) -> str:
    lo, hi = min(values), max(values)
    return f"{lo:,.0f}" if lo == hi else f"{lo:,.0f}–{hi:,.0f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        port, rate, seconds, size = sys.argv[2:6]
        generate(int(port), float(rate), float(seconds), int(size))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="50000,100000,150000,175000,200000,250000",
                   help="packets per second to try, ascending")
    p.add_argument("--tools", default=",".join(TOOLS), help=f"from {', '.join(TOOLS)}")
    p.add_argument("--repeat", type=int, default=1, help="runs of the whole ladder")
    p.add_argument("--no-bulk", action="store_true", help="skip the bulk transfer")
    p.add_argument("--injector", choices=("inject", "tcpreplay"),
                   default="inject" if shutil.which("cc") else "tcpreplay",
                   help="what sends the load: scripts/inject.c (needs cc) or tcpreplay")
    args = p.parse_args()
    if os.geteuid() != 0 or not shutil.which("tcpdump") or not shutil.which(
            "cc" if args.injector == "inject" else "tcpreplay"):
        print("needs root, tcpdump, and cc or tcpreplay (apt-get install tcpdump gcc)",
              file=sys.stderr)
        return 77
    tools = [t for t in TOOLS if t in args.tools.split(",")]
    if not tools:
        p.error(f"--tools: choose from {', '.join(TOOLS)}")
    which_rawinspect(sys.executable)
    print(f"{os.cpu_count()} CPUs, {load()}, load sent by {args.injector}", flush=True)
    rates = [float(r) for r in args.rates.split(",")]
    runs = []
    with tempfile.TemporaryDirectory(prefix="rawinspect-inject-") as built:
        injector = build_injector(Path(built)) if args.injector == "inject" else None
        for n in range(args.repeat):
            if args.repeat > 1:
                print(f"run {n + 1} of {args.repeat}", flush=True)
            runs.append(ladder(tools, rates, args.seconds, free_port(), not args.no_bulk,
                               injector))
    print(f"\nover {args.repeat} run(s) of {args.seconds:g} s per rate, rates tried "
          f"{args.rates} ({load()} now):")
    print(f"  {'tool':10} {'highest drop-free rate':>24} {'…with every line within 10 ms':>32}")
    for tool in tools:
        timely = "n/a (no output)" if tool == "tcpdump-w" else span([r[tool][1] for r in runs])
        print(f"  {tool:10} {span([r[tool][0] for r in runs]):>24} {timely:>32}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
