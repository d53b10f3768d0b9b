"""The compiled replay path (mypyc, see setup.py) and the pure-Python sources agree.

The other tests run the installed rawinspect, which setup.py compiles; these run the
sources in this checkout as well and compare the two outputs byte for byte.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import rawinspect
from conftest import PUBLIC, ROOT, cannot_run

CAPTURES = sorted((ROOT / "captures").rglob("*.pcap*")) + sorted(PUBLIC.glob("*.pcap*"))


def replay(path: Path, *args: str, sources: bool) -> subprocess.CompletedProcess[str]:
    """``rawinspect replay`` from the installed package, or from the checkout's sources."""
    env = dict(os.environ)
    if sources:
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "rawinspect", "replay", str(path), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def compiled() -> None:
    """Both builds exist only when the installed package is the compiled one."""
    if rawinspect.build() != "compiled":
        cannot_run("the installed rawinspect is pure Python (editable install, RAWINSPECT_PURE "
                   "or no C compiler at install time): no compiled build to compare")


def bench_mix(tmp_path_factory: pytest.TempPathFactory, packets: int, concurrent: int) -> Path:
    """``packets`` of the benchmark's mix: IPv4 and IPv6, every close, retransmissions."""
    spec = importlib.util.spec_from_file_location("bench_replay", ROOT / "scripts" / "bench_replay.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path_factory.mktemp("bench") / f"mix{packets}.pcap"
    bench.write_pcap(path, packets, 7, concurrent)
    return path


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's mix."""
    return bench_mix(tmp_path_factory, 20_000, 300)


@pytest.fixture(scope="module")
def small_mix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000 packets of the mix, 20 connections at a time: enough for every option."""
    return bench_mix(tmp_path_factory, 1_000, 20)


def test_version_says_which_build() -> None:
    installed = subprocess.run([sys.executable, "-m", "rawinspect", "--version"],
                               capture_output=True, text=True, check=True).stdout
    assert installed.strip() == f"rawinspect {rawinspect.__version__} ({rawinspect.build()})"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    sources = subprocess.run([sys.executable, "-m", "rawinspect", "--version"],
                             capture_output=True, text=True, check=True, env=env).stdout
    assert sources.strip().endswith("(pure Python)")


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_same_annotations(path: Path, compiled: None) -> None:
    ours = replay(path, "--format", "jsonl", sources=False)
    pure = replay(path, "--format", "jsonl", sources=True)
    assert (ours.returncode, ours.stderr) == (pure.returncode, pure.stderr)
    assert ours.stdout.splitlines() == pure.stdout.splitlines()


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_same_annotations_on_the_benchmark_mix(bench_capture: Path, compiled: None,
                                               fmt: str) -> None:
    ours = replay(bench_capture, "--format", fmt, sources=False)
    pure = replay(bench_capture, "--format", fmt, sources=True)
    assert ours.returncode == pure.returncode == 0, ours.stderr + pure.stderr
    assert ours.stdout.count("\n") >= 20_000
    assert ours.stdout == pure.stdout
    assert ours.stderr == pure.stderr  # the closing line: packets, segments, connections


# Every format, and the options that stop early or filter: the closing line (stderr) counts
# what was read, which a stopped generator must still report in the compiled build.
OPTIONS = [[], ["-c", "3"], ["-c", "300"], ["--conn", "2"], ["--conn", "1", "--conn", "3"],
           ["--host", "10.1.1.2"], ["--port", "80"], ["--conn", "2", "-c", "5"]]
FORMATS = [["-T", "table"], ["-T", "jsonl"], ["-T", "ladder", "--width", "100"],
           ["-T", "ladder", "--ascii"], ["-T", "mermaid"], ["--conns"],
           ["--conns", "-T", "jsonl"], ["-T", "zeek"], ["--explain", "2"]]


@pytest.mark.parametrize("fmt", FORMATS, ids=" ".join)
@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: " ".join(o) or "all")
def test_same_output_with_every_option(small_mix: Path, compiled: None, fmt: list[str],
                                       opts: list[str]) -> None:
    ours = replay(small_mix, *fmt, *opts, sources=False)
    pure = replay(small_mix, *fmt, *opts, sources=True)
    assert ours.returncode == pure.returncode, ours.stderr + pure.stderr
    assert ours.stderr == pure.stderr
    assert stable(ours.stdout) == stable(pure.stdout)


def stable(out: str) -> list[str]:
    """The output without zeek's #open/#close lines, which carry the time of the run."""
    return [line for line in out.splitlines() if not line.startswith(("#open", "#close"))]


@pytest.mark.parametrize("opts", [["-c", "3"], ["--conn", "2"], ["--port", "7"]],
                         ids=" ".join)
def test_same_closing_line_on_public_captures(public_dir: Path, compiled: None,
                                              opts: list[str]) -> None:
    path = public_dir / "zeek-echo-connections.pcap"
    ours = replay(path, *opts, sources=False)
    pure = replay(path, *opts, sources=True)
    assert (ours.returncode, ours.stderr) == (pure.returncode, pure.stderr)
    assert " 0 packets read" not in ours.stderr
    assert ours.stdout == pure.stdout
