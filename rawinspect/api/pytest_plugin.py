"""pytest plugin: capture your server's TCP traffic on loopback during a test, and assert on it.

Registered through the ``pytest11`` entry point: installing rawinspect is enough. The
``tcp_capture`` fixture starts a live capture (``rawinspect.live``) before the test's body
and gives its ``Capture``; the first look at the results ends the capture after a short
linger, so a test reads::

    def test_server_closes(tcp_capture):
        talk_to_my_server()
        tcp_capture.assert_closed_cleanly()

What it captures: the ports of ``@pytest.mark.tcp_capture(ports=[...])``, else those the
``tcp_capture_ports`` fixture returns (override it to name a server fixture's port), else
all TCP on the interface. When a test that used it fails, the capture (annotated pcapng)
and its ladder are saved under ``--rawinspect-dir`` (default: pytest's temporary folder),
in a folder named after the test, and the path is added to the test's report.

Without root or CAP_NET_RAW such tests are skipped with the reason, or fail when
``--rawinspect-unprivileged=fail`` (the default when the CI environment variable is set).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Generator, Iterator

import pytest

from .entry import CapturePermissionError, live
from .results import Capture

_CAPTURE = pytest.StashKey[Capture]()
_SAVE_DIR = pytest.StashKey[Path]()
MARKER = ("tcp_capture(ports=(), interface='lo', filter=None, linger=0.5): what the "
          "tcp_capture fixture captures (default: the tcp_capture_ports fixture's ports, "
          "else all TCP on lo)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rawinspect", "rawinspect: TCP behaviour of the program under test")
    group.addoption("--rawinspect-dir", metavar="DIR", default=None,
                    help="save the capture (pcapng, annotated) and the ladder of each failing "
                         "test that used tcp_capture under DIR/<test> (default: pytest's "
                         "temporary folder)")
    group.addoption("--rawinspect-unprivileged", choices=("skip", "fail"), default=None,
                    help="a test whose capture cannot start (no root or CAP_NET_RAW): skip it "
                         "with the reason, or fail it (default: skip; fail when CI is set)")
    parser.addini("rawinspect_unprivileged", "skip or fail: as --rawinspect-unprivileged",
                  default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)


def unprivileged_mode(config: pytest.Config) -> str:
    """"skip" or "fail": the option, else the ini value, else "fail" under CI."""
    mode = config.getoption("--rawinspect-unprivileged") or config.getini(
        "rawinspect_unprivileged")
    if mode not in ("", "skip", "fail"):
        raise pytest.UsageError(f"rawinspect_unprivileged = {mode!r}: use skip or fail")
    return str(mode) or ("fail" if os.environ.get("CI") else "skip")


def cannot_capture(config: pytest.Config, reason: str) -> None:
    """Skip the test with ``reason``, or fail it (``unprivileged_mode``): never a pass."""
    if unprivileged_mode(config) == "fail":
        pytest.fail(f"this test needs a live capture, which cannot start: {reason}",
                    pytrace=False)
    pytest.skip(f"needs a live capture (root or CAP_NET_RAW): {reason.splitlines()[0]}")


@pytest.fixture
def tcp_capture_ports(request: pytest.FixtureRequest) -> list[int]:
    """The ports ``tcp_capture`` captures; override it to return your server's port."""
    marker = request.node.get_closest_marker("tcp_capture")
    return list(marker.kwargs.get("ports", ())) if marker else []


@pytest.fixture
def tcp_capture(request: pytest.FixtureRequest, tcp_capture_ports: list[int],
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    """A live capture on loopback around the test's body (see the module's docstring)."""
    marker = request.node.get_closest_marker("tcp_capture")
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    kwargs["ports"] = kwargs.get("ports") or tcp_capture_ports
    session = live(**kwargs)
    try:
        capture = session.__enter__()
    except CapturePermissionError as e:
        cannot_capture(request.config, str(e))
        raise  # not reached: skip and fail raise
    chosen = request.config.getoption("--rawinspect-dir")
    request.node.stash[_SAVE_DIR] = (Path(chosen) if chosen else
                                     tmp_path_factory.getbasetemp() / "rawinspect")
    request.node.stash[_CAPTURE] = capture
    try:
        yield capture
    finally:
        session.__exit__(None, None, None)


def folder_name(nodeid: str) -> str:
    """A folder name for a test: its node id with what a path cannot hold replaced."""
    return re.sub(r"[^\w.-]+", "_", nodeid).strip("_")[:150]


def save_failure(capture: Capture, folder: Path) -> list[str]:
    """The capture (annotated pcapng) and its ladder in ``folder``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    pcap, ladder = folder / "capture.pcapng", folder / "ladder.txt"
    capture.write(pcap, annotated=True)
    ladder.write_text(capture.ladder(ascii=True) or "(no TCP segments captured)\n")
    return [str(pcap), str(ladder)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that captured: save its capture and ladder, name them in the report."""
    report = yield
    capture = item.stash.get(_CAPTURE, None)
    if capture is not None and report.when == "call" and report.failed:
        folder = item.stash[_SAVE_DIR] / folder_name(item.nodeid)
        try:
            paths = save_failure(capture, folder)
            text = "capture and ladder saved:\n" + "\n".join(f"  {p}" for p in paths)
        except (OSError, ValueError) as e:
            text = f"the capture could not be saved in {folder}: {e}"
        report.sections.append(("rawinspect", text))
    return report
