"""Shared fixtures: public captures, privilege checks. Under CI, a test that cannot run fails."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

import rawinspect

ROOT = Path(__file__).resolve().parent.parent
PUBLIC = ROOT.parent / "shared" / "pcaps" / "public"
IN_CI = bool(os.environ.get("CI"))

# Subprocesses (`python -m rawinspect`) run the same rawinspect as the tests import: the
# installed one, compiled by setup.py, under scripts/test.sh (`python -P`), the sources when
# pytest runs from the checkout without -P. Without this, the checkout's sources would win.
os.environ["PYTHONSAFEPATH"] = "1"
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(Path(rawinspect.__file__).parent.parent), os.environ.get("PYTHONPATH")]))


def cannot_run(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, where every test must run."""
    if IN_CI:
        pytest.fail(f"CI is set but this test cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def public_dir() -> Path:
    """../shared/pcaps/public, present beside a checkout of the project's workplace."""
    if not (PUBLIC / "reference.tsv").is_file():
        cannot_run(f"public captures not found at {PUBLIC} (they live beside the project, "
                   "not in it)")
    return PUBLIC


def reference_rows() -> list[dict[str, str]]:
    """tshark's reference counts, one row per public capture (empty without ../shared)."""
    ref = PUBLIC / "reference.tsv"
    if not ref.is_file():
        return []
    with ref.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def has_capture_privileges() -> bool:
    """Root, or CAP_NET_RAW in the effective set."""
    if os.geteuid() == 0:
        return True
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) & (1 << 13))
    except OSError:
        pass
    return False


@pytest.fixture(autouse=True)
def _privileged_gate(request: pytest.FixtureRequest) -> None:
    """Tests marked ``privileged`` need capture rights: skip without, or fail under CI."""
    if request.node.get_closest_marker("privileged") and not has_capture_privileges():
        cannot_run("needs root or CAP_NET_RAW for live capture")


@pytest.fixture
def realistic_mix(tmp_path: Path) -> Callable[[int, int], Path]:
    """Writes ``scripts/traffic_mix.py``'s realistic mix: ``packets`` with ``seed``."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from traffic_mix import write_pcap

    def write(packets: int, seed: int) -> Path:
        path = tmp_path / f"mix-{packets}-{seed}.pcap"
        write_pcap(path, "realistic", packets, seed=seed)
        return path
    return write


def stable_lines(out: str) -> list[str]:
    """An output's lines but zeek's #open and #close (they carry the time of the run)."""
    return [line for line in out.splitlines() if not line.startswith(("#open", "#close"))]


class Retirement:
    """``Output.retire`` either as it is, counting the connections (``on``), or forgetting
    nothing (``off``): the same run both ways must print the same bytes. ``on`` also
    writes what is kept of the retired connections to disk after a few dozen (spill)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from rawinspect.app.output import Output
        from rawinspect.views import spill
        self.monkeypatch, self.output, self.real = monkeypatch, Output, Output.retire
        self.spill = spill
        self.retired: list[int] = []

    def on(self) -> None:
        real, retired = self.real, self.retired

        def counted(output: Any, conns: list[int]) -> None:
            retired.extend(conns)
            real(output, conns)
        self.monkeypatch.setattr(self.output, "retire", counted)
        self.monkeypatch.setattr(self.spill, "LIMIT", 40)
        self.monkeypatch.setattr(self.spill, "BLOCK", 7)

    def off(self) -> None:
        self.monkeypatch.setattr(self.output, "retire", lambda output, conns: None)


@pytest.fixture
def retirement(monkeypatch: pytest.MonkeyPatch) -> Retirement:
    return Retirement(monkeypatch)
