"""Starting a scenario's programs beside the sniffer, and reading back their report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any, Callable

from .base import Scenario


def free_ports(host: str, n: int) -> list[int]:
    """``n`` distinct ports the kernel would hand out now (bound to 0, then released)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(family, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def capture_filter(ports: list[int], udp: bool = False) -> str:
    """BPF for the scenario's traffic: TCP (and UDP) to or from its ports."""
    return ("(tcp or udp)" if udp else "tcp") + " and (" + " or ".join(
        f"port {p}" for p in ports) + ")"


class ScenarioRun:
    """The scenario's programs, running in a child process."""

    def __init__(self, scenario: Scenario, host: str, ports: list[int],
                 wrap: Callable[[list[str]], list[str]] | None = None,
                 pass_fds: tuple[int, ...] = ()) -> None:
        """``wrap`` the programs' command line (the call trace's gate), keeping
        ``pass_fds`` open for it."""
        self.scenario = scenario
        fd, self.report_path = tempfile.mkstemp(prefix="rawinspect-", suffix=".json")
        os.close(fd)
        argv = [sys.executable, "-m", "rawinspect.scenarios.child", scenario.name, host,
                ",".join(map(str, ports)), self.report_path]
        self.proc = subprocess.Popen(wrap(argv) if wrap else argv, start_new_session=True,
                                     pass_fds=pass_fds)

    def report(self) -> dict[str, Any]:
        """The programs' report; a hang or crash becomes an error entry."""
        if self.proc.poll() is None:
            self.stop()
            os.unlink(self.report_path)
            return {"error": f"did not finish within {self.scenario.timeout:g} s"}
        try:
            with open(self.report_path) as f:
                data: dict[str, Any] = json.load(f)
        except (OSError, ValueError):
            data = {"error": f"the programs exited with status {self.proc.returncode} "
                             "and no report"}
        finally:
            os.unlink(self.report_path)
        return data

    def stop(self) -> None:
        """End the programs early (Ctrl-C or SIGTERM on the capture)."""
        if self.proc.poll() is None:
            # The programs run in a session of their own: end it and every process in it.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
