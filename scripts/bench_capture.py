#!/usr/bin/env python3
"""Live capture speed: the highest drop-free rate of rawinspect and of tcpdump, same run.

A Python sender cannot produce more than about 30,000 segments/s here, so the load
comes from tcpreplay: a synthetic connection (100-byte data segments one way, ACKs the
other) injected on lo at a set packet rate. Its IP checksums are left zero, so the kernel
drops each packet right after the capture point and answers nothing; every tool sees
exactly the injected packets. Each tool captures alone, its output going to a pipe
(rawinspect annotates every segment as jsonl); the tool's own closing line gives
packets captured and dropped by the kernel. Rates step up until a tool drops packets.
A real bulk transfer at 64 MB/s (64 KiB writes over a loopback socket) is run once per
tool as well. For rawinspect the delay between a packet's kernel timestamp and the
moment its annotation reaches the pipe is sampled.

    sudo .venv/bin/python scripts/bench_capture.py [--seconds 10] [--rates 50000,...]

Needs root, tcpdump and tcpreplay (apt-get install tcpdump tcpreplay). Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench_replay import RAWINSPECT, say_which_rawinspect

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


def replay_load(pcap: Path, rate: float) -> dict:
    """Inject the synthetic capture on lo at ``rate`` packets/s with tcpreplay."""
    t0 = time.monotonic()
    subprocess.run(["tcpreplay", "-q", "-K", "--intf1=lo", f"--pps={rate:g}", str(pcap)],
                   check=True, capture_output=True, timeout=600)
    return {"seconds": time.monotonic() - t0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tool_command(tool: str, port: int) -> list[str]:
    if tool == "tcpdump":
        return ["tcpdump", "-i", "lo", "-n", "-w", "/dev/null", "-B", "65536",
                f"tcp port {port}"]
    return RAWINSPECT + ["capture", "-f", f"tcp port {port}", "-T", "jsonl", "--color", "never"]


def trial(tool: str, rate: float, seconds: float, size: int, pcap: Path | None = None,
          port: int = 0) -> dict:
    """One capture of one load (tcpreplay of ``pcap``, or the bulk sender)."""
    port = port or free_port()
    proc = subprocess.Popen(tool_command(tool, port), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ready = proc.stderr.readline()  # both tools announce themselves once listening
    if not ready:
        raise SystemExit(f"{tool} did not start: {proc.stderr.read()}")
    time.sleep(0.3)
    delays: list[float] = []

    def read_output() -> None:
        n = 0
        for line in proc.stdout:  # type: ignore[union-attr]
            n += 1
            if n % 200 == 0:
                m = re.search(r'"ts":([0-9.]+)', line)
                if m:
                    delays.append(time.time() - float(m.group(1)))

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    if pcap is not None:
        sent = replay_load(pcap, rate)
    else:
        gen = subprocess.run([sys.executable, __file__, "--generate", str(port), str(rate),
                              str(seconds), str(size)], capture_output=True, text=True,
                             timeout=seconds + 60)
        sent = json.loads(gen.stdout)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        err = proc.stderr.read()  # type: ignore[union-attr]
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    captured = CAPTURED.search(err)
    dropped = DROPS.search(err)
    delays.sort()
    return {"tool": tool, "rate": rate, "seconds": sent["seconds"], "captured": int(captured.group(1)) if captured else -1,
            "dropped": int(dropped.group(1)) if dropped else -1,
            "delay_p50_ms": 1000 * delays[len(delays) // 2] if delays else None,
            "delay_max_ms": 1000 * delays[-1] if delays else None}


def show(r: dict) -> None:
    pps = r["captured"] / r["seconds"] if r["seconds"] else 0
    lat = ""
    if r["delay_p50_ms"] is not None:
        lat = f", output delay p50 {r['delay_p50_ms']:.1f} ms max {r['delay_max_ms']:.1f} ms"
    print(f"  {r['tool']:10} offered {r['rate']:>9,.0f}/s: {r['captured']:>9,} packets "
          f"({pps:,.0f}/s), {r['dropped']:,} dropped{lat}", flush=True)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--generate":
        port, rate, seconds, size = sys.argv[2:6]
        generate(int(port), float(rate), float(seconds), int(size))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--rates", default="25000,50000,75000,100000,150000,200000,300000",
                   help="packets per second to try, ascending")
    p.add_argument("--tools", default="rawinspect,tcpdump",
                   help="which tools to measure (default both)")
    args = p.parse_args()
    if os.geteuid() != 0 or not shutil.which("tcpdump") or not shutil.which("tcpreplay"):
        print("needs root, tcpdump and tcpreplay (apt-get install tcpdump tcpreplay)",
              file=sys.stderr)
        return 77
    say_which_rawinspect()
    best: dict[str, float] = {}
    realtime = 0.0  # rawinspect: highest rate with every sampled annotation out within 10 ms
    port = free_port()
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"rawinspect-bench-{os.getpid()}.pcap"
    tools = [t for t in ("rawinspect", "tcpdump") if t in args.tools.split(",")]
    for tool in tools:
        print(f"{tool}:", flush=True)
        for rate in map(float, args.rates.split(",")):
            synthetic_pcap(tmp, int(rate * args.seconds), port)
            r = trial(tool, rate, args.seconds, 100, tmp, port)
            tmp.unlink()
            show(r)
            if r["dropped"] != 0 or r["captured"] < int(rate * args.seconds):
                break
            best[tool] = r["captured"] / r["seconds"]
            if r["delay_max_ms"] is not None and r["delay_max_ms"] <= 10:
                realtime = best[tool]
        bulk = trial(tool, 64 * 16, args.seconds, 65536)   # 64 MB/s in 64 KiB writes
        bulk_mb = 64 * 16 * 65536 / 1e6
        print(f"  bulk {bulk_mb:.0f} MB/s for {args.seconds:g} s: {bulk['captured']:,} "
              f"packets, {bulk['dropped']:,} dropped", flush=True)
    for tool in tools:
        print(f"highest drop-free rate, {tool}: {best.get(tool, 0):,.0f} packets/s "
              "(of the rates tried)")
    print(f"highest rate with every sampled annotation printed within 10 ms, rawinspect: "
          f"{realtime:,.0f} packets/s")
    if best.get("tcpdump"):
        print(f"ratio rawinspect/tcpdump: {best.get('rawinspect', 0) / best['tcpdump']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
