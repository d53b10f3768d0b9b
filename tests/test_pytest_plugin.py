"""The pytest plugin, run on test files of its own (pytester): the fixture, the saved
capture of a failing test, the unprivileged convention, and the README's echo server example.

The tests that capture are marked ``privileged``; those about missing privileges replace
the packet socket with one that refuses, so they run anywhere.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
REFUSE = """
import pytest
from rawinspect.sources import sniffer

@pytest.fixture(autouse=True)
def no_capture_rights(monkeypatch):
    def refuse(*args, **kw):
        raise sniffer.NoPrivilegeError(sniffer.privilege_hint())
    monkeypatch.setattr(sniffer, "Sniffer", refuse)
"""
USES_CAPTURE = """
def test_needs_capture(tcp_capture):
    tcp_capture.assert_no_reset()
"""


def test_the_plugin_is_registered(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--rawinspect-dir=DIR*", "*--rawinspect-unprivileged*"])
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.tcp_capture(ports=(),*"])


def test_without_privileges_a_test_is_skipped_with_the_reason(pytester, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest(REFUSE)
    pytester.makepyfile(USES_CAPTURE)
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*needs a live capture (root or CAP_NET_RAW)*"])


def test_without_privileges_a_test_fails_under_ci(pytester, monkeypatch):
    monkeypatch.setenv("CI", "1")
    pytester.makeconftest(REFUSE)
    pytester.makepyfile(USES_CAPTURE)
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*this test needs a live capture, which cannot start*",
                                 "*setcap*"])
    # The option overrides the environment, both ways.
    pytester.runpytest("--rawinspect-unprivileged=skip").assert_outcomes(skipped=1)
    monkeypatch.delenv("CI")
    pytester.runpytest("--rawinspect-unprivileged=fail").assert_outcomes(errors=1)


FAILING = """
import socket
import pytest

@pytest.fixture
def server():
    listener = socket.create_server(("127.0.0.1", 0))
    yield listener
    listener.close()

@pytest.fixture
def tcp_capture_ports(server):
    return [server.getsockname()[1]]

def test_leaves_close_wait(server, tcp_capture):
    client = socket.create_connection(server.getsockname())
    accepted, _ = server.accept()
    client.close()   # the server never closes `accepted`
    tcp_capture.connections[0].assert_states(server=["LISTEN", "SYN_RCVD", "ESTABLISHED",
                                                     "CLOSE_WAIT", "LAST_ACK", "CLOSED"])

@pytest.mark.tcp_capture(ports=[1], linger=0.1)
def test_marker_ports(tcp_capture):
    assert tcp_capture.connections == []
"""


@pytest.mark.privileged
def test_a_failing_test_saves_its_capture_and_ladder(pytester, tmp_path):
    pytester.makepyfile(FAILING)
    result = pytester.runpytest(f"--rawinspect-dir={tmp_path}")
    result.assert_outcomes(passed=1, failed=1)
    folder = tmp_path / "test_a_failing_test_saves_its_capture_and_ladder.py_test_leaves_close_wait"
    result.stdout.fnmatch_lines([
        "*the server's states are not the expected ones*",
        "*5 LAST_ACK*-   <<*",
        "*conn 1: client 127.0.0.1:* <-> server 127.0.0.1:*",   # the ladder
        "*- rawinspect -*", "*capture and ladder saved:*", f"*{folder}/capture.pcapng*"])
    assert "CLOSE_WAIT" in (folder / "ladder.txt").read_text()
    import rawinspect
    saved = rawinspect.read(folder / "capture.pcapng")
    assert saved.connections[0].server.final == "CLOSE_WAIT"


@pytest.mark.privileged
def test_the_readme_example_catches_the_echo_servers_close_wait(pytester, tmp_path):
    for name in ("echo_server.py", "test_echo_server.py"):
        shutil.copy(ROOT / "examples" / name, pytester.path / name)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, xfailed=1)
    # The bug's own report, as the README shows it.
    result = pytester.runpytest("--runxfail", f"--rawinspect-dir={tmp_path}",
                                "-k", "forgets")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*did not close cleanly*",
        "*the server was left in CLOSE_WAIT: its program never called close() after read() "
        "returned 0*",
        "*capture and ladder saved:*"])
