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


@pytest.fixture(scope="module")
def bench_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 packets of the benchmark's mix: IPv4 and IPv6, every close, retransmissions."""
    spec = importlib.util.spec_from_file_location("bench_replay", ROOT / "scripts" / "bench_replay.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path_factory.mktemp("bench") / "mix.pcap"
    bench.write_pcap(path, 20_000, 7, 300)
    return path


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
