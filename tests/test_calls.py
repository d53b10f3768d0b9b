"""The programs' calls without privileges: a recorded trace assembled into Calls, the
calls view's links on a hand-built timeline, the saved calls read back, and the
scenarios' expectations on the calls."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rawinspect.app.annotator import Annotator
from rawinspect.core.annotation import Annotation
from rawinspect.core.call import ENTERED, EXIT, RETURNED, SIGNAL, Call
from rawinspect.render.pcapwriter import PcapWriter
from rawinspect.scenarios import all_scenarios
from rawinspect.scenarios.call_checks import Boundaries, Calls, Reaped, Silence, StateCause
from rawinspect.scenarios.check import verify
from rawinspect.scenarios.describe import expectations
from rawinspect.sources.call_events import CallAssembler, parse_event
from rawinspect.sources.calls_file import read_calls, sidecar
from rawinspect.views.calls import CallLinker
from tcpseq import ACK, C_ISN, FIN, RST, S_ISN, SYN, Conv

TRACE = Path(__file__).resolve().parent / "data" / "calls_trace.txt"
PSH = 0x08
CLIENT, SERVER = "10.0.0.1:40000", "10.0.0.2:80"


# -- a recorded trace (tests/data/calls_trace.txt) ----------------------------------------
# Recorded once with CallTrace (options fields, record-tgid, event-fork; both instances'
# lines merged in time order) around a program that listens, connects, sends 10 bytes
# three times, reads 30, closes the accepted socket, reads EOF, writes twice (RST, then
# EPIPE with SIGPIPE ignored), then forks a child that restores SIGPIPE's default action
# and dies of it while the parent waits.

def assembled() -> list[Call]:
    asm = CallAssembler(0.0)
    lines = TRACE.read_text().splitlines()
    events = [parse_event(line) for line in lines]
    assert all(events), "every line of the excerpt is an event"
    for ev in events:
        asm.feed(ev)
    return asm.take(None)


def test_trace_lines_parse_into_fields():
    ev = parse_event(TRACE.read_text().splitlines()[0])
    assert ev is not None and ev.name == "sys_enter_socket"
    assert ev.fields["family"] == 2 and ev.tgid == ev.tid == 25639
    assert parse_event("# tracer: nop") is None


def test_assembled_calls_of_the_parent():
    calls = [c for c in assembled() if c.pid == 25639]
    texts = [c.text() for c in calls if c.kind == "call"]
    assert texts[:7] == [
        "socket(AF_INET, SOCK_STREAM) = 3",
        "setsockopt(fd 3, SOL_SOCKET, SO_REUSEADDR) = 0",
        "bind(fd 3, 127.0.0.1:43621) = 0",
        "listen(fd 3, 127.0.0.1:43621, backlog 4) = 0",
        "socket(AF_INET, SOCK_STREAM) = 4",
        "connect(fd 4, 127.0.0.1:43621) = 0",
        "accept4(fd 3) = 5 from 127.0.0.1:58020"]
    sends = [c for c in calls if c.name == "sendto"]
    assert [(c.ret, c.errno) for c in sends] == [(10, ""), (10, ""), (10, ""), (5, ""),
                                                 (-1, "EPIPE")]
    assert all(c.local == "127.0.0.1:58020" and c.peer == "127.0.0.1:43621" for c in sends)
    reads = [(c.fd, c.ret) for c in calls if c.name == "recvfrom"]
    assert reads == [(5, 30), (4, 0)]
    accepted = next(c for c in calls if c.name == "accept4")
    assert (accepted.local, accepted.peer) == ("127.0.0.1:43621", "127.0.0.1:58020")
    ignored = next(c for c in calls if c.kind == SIGNAL)
    assert (ignored.name, ignored.args) == ("SIGPIPE", "ignored by the process")
    assert calls[-1].kind == EXIT and calls[-1].ret == 0


def test_assembled_child_dies_of_sigpipe_and_is_waited_for():
    calls = assembled()
    child = [c for c in calls if c.pid == 25640]
    assert child[0].text() == "socket(AF_INET, SOCK_STREAM) = 4"  # fd table copied on fork
    assert [c.text() for c in child if c.kind == "call"][-1] == "sendto(fd 4, 1 bytes) = -1 EPIPE"
    assert [(c.kind, c.name, c.args) for c in child[-2:]] == [
        (SIGNAL, "SIGPIPE", "default action: the process dies"), (EXIT, "exit", "SIGPIPE")]
    assert child[-1].text() == "killed by SIGPIPE"
    waits = [c for c in calls if c.name == "wait4"]
    assert [c.phase for c in waits] == [ENTERED, RETURNED]
    assert waits[1].ret == 25640 and waits[1].end >= child[-1].ts


def test_assembler_takes_rows_up_to_a_horizon_and_announces_waiting_calls():
    asm = CallAssembler(0.0)
    events = [parse_event(line) for line in TRACE.read_text().splitlines()]
    fork = next(ev for ev in events if ev.name == "sched_process_fork")
    for ev in events:
        asm.feed(ev)
        if ev is fork:
            break
    early = asm.take(fork.ts + 0.001)
    assert early and all(c.at <= fork.ts + 0.001 for c in early)
    assert [c.name for c in early][:2] == ["socket", "setsockopt"]
    for ev in events[events.index(fork) + 1:]:
        asm.feed(ev)
    rest = asm.take(None)
    assert {c.pid for c in rest} >= {25640}
    assert len(early) + len(rest) == len(assembled())


STALE_NAMES = """\
          python-700   (    700) [001] ..... 10.000100: sched_process_fork: parent_comm=python parent_pid=0x2bc (700) child_comm=python child_pid=0x2bd (701)
          python-701   (    701) [000] ..... 10.000200: task_rename: pid=0x2bd (701) oldcomm=python newcomm=sh oom_score_adj=0x0 (0)
          python-701   (    701) [000] ..... 10.000300: task_rename: pid=0x2bd (701) oldcomm=sh newcomm=my server oom_score_adj=0x0 (0)
           <...>-701   (    701) [000] ..... 10.000400: sys_enter_socket: __syscall_nr=0x29 (41) family=0x2 (2) type=0x1 (1) protocol=0x0 (0)
           <...>-701   (    701) [000] ..... 10.000410: sys_exit_socket: __syscall_nr=0x29 (41) ret=0x3 (3)
              sh-701   (    701) [000] ..... 10.000500: sys_enter_close: __syscall_nr=0x3 (3) fd=0x3 (3)
              sh-701   (    701) [000] ..... 10.000510: sys_exit_close: __syscall_nr=0x3 (3) ret=0x0 (0)
          python-701   (    701) [000] ..... 10.000600: sched_process_exit: comm=python pid=0x2bd (701) prio=0x78 (120) group_dead=0x1 (1)
"""


def test_calls_carry_the_name_from_forks_and_renames_not_the_trace_s_stale_one():
    # The trace prints the name it has cached for the pid when the line is read: just
    # after an exec that is the parent's, the shell's or "<...>" (seen in CI).
    asm = CallAssembler(0.0)
    for line in STALE_NAMES.splitlines():
        asm.feed(parse_event(line))
    rows = asm.take(None)
    assert [(c.name, c.comm) for c in rows] == [("socket", "my server"),
                                                ("close", "my server"),
                                                ("exit", "my server")]


# -- the calls view on a hand-built timeline ---------------------------------------------

def call(t: float, side: str, name: str, **kw) -> Call:
    pid, local, peer = (812, CLIENT, SERVER) if side == "c" else (900, SERVER, CLIENT)
    return Call(ts=t, end=t + 2e-6, pid=pid, comm="prog", name=name, local=local, peer=peer,
                **kw)


def conversation() -> tuple[list[Annotation], dict[str, Call]]:
    """A handshake, three 10-byte sends carried by one 30-byte segment and read by one
    recv, the server's close (FIN), the client's EOF, a late write answered by RST and
    the write after it failing with EPIPE; each call where the programs made it."""
    c = Conv(step=0.01)
    segs = c.handshake()
    c1, s1 = C_ISN + 1, S_ISN + 1
    segs += [c.seg("c", PSH | ACK, c1, s1, length=30), c.seg("s", ACK, s1, c1 + 30),
             c.seg("s", FIN | ACK, s1, c1 + 30), c.seg("c", ACK, c1 + 30, s1 + 1),
             c.seg("c", PSH | ACK, c1 + 30, s1 + 1, length=5), c.seg("s", RST, s1 + 1)]
    anns = Annotator().feed_all(segs)
    t = [a.seg.ts for a in anns]
    calls = {
        "connect": call(t[0] - 0.002, "c", "connect", fd=3, args=SERVER, ret=0),
        "send1": call(t[3] - 0.004, "c", "sendto", fd=3, args="10 bytes", ret=10),
        "send2": call(t[3] - 0.003, "c", "sendto", fd=3, args="10 bytes", ret=10),
        "send3": call(t[3] - 0.002, "c", "sendto", fd=3, args="10 bytes", ret=10),
        "recv": call(t[4] + 0.001, "s", "recvfrom", fd=4, args="1024 bytes", ret=30),
        "close": call(t[5] - 0.001, "s", "close", fd=4, ret=0),
        "eof": call(t[6] + 0.001, "c", "recvfrom", fd=3, args="1024 bytes", ret=0),
        "late": call(t[7] - 0.001, "c", "sendto", fd=3, args="5 bytes", ret=5),
        "epipe": call(t[8] + 0.001, "c", "sendto", fd=3, args="6 bytes", ret=-1,
                      errno="EPIPE"),
    }
    return anns, calls


def linked(anns: list[Annotation], calls: dict[str, Call]) -> CallLinker:
    items: list[Annotation | Call] = [*anns, *calls.values()]
    items.sort(key=lambda i: i.at if isinstance(i, Call) else i.seg.ts)
    linker = CallLinker()
    linker.link(items)
    return linker


def test_state_changes_are_linked_to_the_calls_that_made_them():
    anns, calls = conversation()
    linked(anns, calls)
    assert anns[0].cause == "SYN_SENT ← connect(fd 3), pid 812, client"
    assert anns[5].cause == "FIN_WAIT_1 ← close(fd 4), pid 900, server"
    assert calls["connect"].conn == 1 and calls["connect"].side == "client"
    assert calls["recv"].side == "server" and calls["close"].conn == 1


def test_failed_and_ending_calls_are_linked_to_the_segments_that_explain_them():
    anns, calls = conversation()
    linked(anns, calls)
    assert calls["epipe"].cause == f"← RST, frame {anns[8].seg.frame}"
    assert calls["eof"].cause.startswith(f"← FIN, frame {anns[5].seg.frame}")
    assert calls["late"].cause == ""


def test_message_boundaries_text():
    anns, calls = conversation()
    first = {k: calls[k] for k in ("connect", "send1", "send2", "send3", "recv")}
    flows = linked(anns[:5], first).boundaries()
    assert [(conn, label, flow.text()) for conn, label, flow in flows] == [
        (1, "client → server",
         "3 send() of 10 bytes → 1 segment of 30 bytes → 1 recv() of 30 bytes")]


def test_message_boundaries_leave_out_failed_sends():
    anns, calls = conversation()
    texts = {label: flow.text() for _conn, label, flow in linked(anns, calls).boundaries()}
    assert texts["client → server"] == ("4 send() of 10+10+10+5 = 35 bytes → 2 segments of "
                                         "30+5 = 35 bytes → 1 recv() of 30 bytes")


# -- the scenarios' expectations on the calls --------------------------------------------

def checked(want, anns: list[Annotation], calls: dict[str, Call]) -> list:
    linked(anns, calls)
    return want.check(list(calls.values()), anns)


def test_a_call_and_its_result_linked_to_the_rst_before_it():
    anns, calls = conversation()
    lines = checked(Calls("sendto|write", "EPIPE", side="client", cause="RST"), anns, calls)
    assert [c.ok for c in lines] == [True, True], lines
    assert "seen 1×" in lines[0].text and "1 of 1" in lines[1].text


def test_a_cause_naming_a_later_segment_fails():
    anns, calls = conversation()
    linked(anns, calls)
    rst = anns[8]
    calls["epipe"].ts = calls["epipe"].end = rst.seg.ts - 0.005  # returned before the RST
    lines = Calls("sendto", "EPIPE", cause="RST").check(list(calls.values()), anns)
    assert lines[1].ok is False and "after the call returned" in lines[1].text


def test_counts_results_and_sides():
    anns, calls = conversation()
    rows = list(calls.values())
    linked(anns, calls)
    assert Calls("sendto", ">0", side="client", times=4, exact=True).check(rows, anns)[0].ok
    assert not Calls("sendto", ">0", side="server").check(rows, anns)[0].ok
    assert Calls("recvfrom", "=0", side="client", cause="FIN").check(rows, anns)[1].ok
    assert Calls("listen", times=0, exact=True).check(rows, anns)[0].ok
    assert not Calls("connect", "ECONNREFUSED").check(rows, anns)[0].ok


def test_state_cause_and_boundaries():
    anns, calls = conversation()
    assert checked(StateCause("client", "SYN_SENT", ("connect",)), anns, calls)[0].ok
    assert checked(StateCause("server", "FIN_WAIT_1", ("close",)), anns, calls)[0].ok
    wrong = checked(StateCause("server", "FIN_WAIT_1", ("shutdown",)), anns, calls)[0]
    assert not wrong.ok and "not shutdown" in wrong.text
    first = {k: calls[k] for k in ("connect", "send1", "send2", "send3", "recv")}
    line = checked(Boundaries(1, sends="=3", recvs="<3"), anns[:5], first)[0]
    assert line.ok and "3 send() of 10 bytes" in line.text
    assert not checked(Boundaries(1, sends="=3", recvs="=3"), anns[:5], first)[0].ok
    unread = checked(Boundaries(1, sends="=4", recvs="=1"), anns, calls)[0]
    assert not unread.ok and "the byte counts differ" in unread.text  # 5 bytes never read


def test_socket_history_tells_setsockopt_before_bind():
    rows = [Call(ts=1.0, pid=5, name="socket", ret=3, args="AF_INET, SOCK_STREAM"),
            Call(ts=1.1, pid=5, name="bind", fd=3, ret=-1, errno="EADDRINUSE"),
            Call(ts=1.2, pid=5, name="close", fd=3, ret=0),
            Call(ts=1.3, pid=5, name="socket", ret=3, args="AF_INET, SOCK_STREAM"),
            Call(ts=1.4, pid=5, name="setsockopt", fd=3, ret=0,
                 args="SOL_SOCKET, SO_REUSEADDR"),
            Call(ts=1.5, pid=5, name="bind", fd=3, ret=0)]
    reuse = "setsockopt SO_REUSEADDR"
    assert Calls("bind", "EADDRINUSE", socket_lacks=reuse).check(rows, [])[0].ok
    assert Calls("bind", "ok", socket_has=reuse).check(rows, [])[0].ok
    assert not Calls("bind", "EADDRINUSE", socket_has=reuse).check(rows, [])[0].ok
    assert not Calls("bind", "ok", socket_lacks=reuse).check(rows, [])[0].ok


def test_children_reaped_after_sigchld():
    def row(t: float, **kw) -> Call:
        return Call(ts=t, end=t, **kw)
    rows = [row(0.0, pid=10, name="socket", ret=3),
            row(1.0, kind=EXIT, pid=11, name="exit", ret=0),
            row(1.0, kind=EXIT, pid=12, name="exit", ret=0),
            row(1.1, kind=SIGNAL, pid=10, name="SIGCHLD", args="caught by a handler"),
            row(1.2, pid=10, name="wait4", args="pid -1, WNOHANG", ret=11),
            row(1.2, pid=10, name="wait4", args="pid -1, WNOHANG", ret=12),
            row(2.0, kind=EXIT, pid=10, name="exit", ret=0)]
    assert [c.ok for c in Reaped(2).check(rows, [])] == [True, True]
    lines = Reaped(2).check(rows[:-2], [])
    assert [c.ok for c in lines] == [False, False] and "never reaped: pid 12" in lines[0].text


def test_silence_before_a_late_close():
    anns, calls = conversation()
    linked(anns, calls)
    rows = list(calls.values())
    eof = calls["eof"]
    rows.append(Call(ts=eof.end + 1.5, pid=812, name="close", fd=3, ret=0, side="client",
                     conn=1))
    line = Silence("client", 1.0).check(rows, anns)[0]
    assert not line.ok and "segments meanwhile" in line.text  # the late write's data
    assert not Silence("client", 2.0).check(rows, anns[:7], )[0].ok


def test_without_recorded_calls_the_call_checks_are_listed_not_failed():
    scenario = all_scenarios()["write-after-close"]
    anns, _calls = conversation()
    v = verify(scenario.expect, anns, {"outcomes": {}}, calls=None)
    lines = v.lines()
    assert v.unchecked == len(scenario.expect.calls) > 0
    assert any("not checked (calls not recorded)" in line for line in lines)
    assert "expectations on the calls not checked" in lines[-2]
    assert lines[-1].endswith("checks passed")  # the summary stays last
    assert all(c.ok is None for c in v.checks if c.text.startswith("calls:"))


def test_every_scenario_states_its_call_expectations():
    for name, scenario in all_scenarios().items():
        text = "\n".join(expectations(scenario.expect))
        assert scenario.expect.calls, name
        assert "Calls the kernel must record" in text, name
        assert all(want.text() in text for want in scenario.expect.calls), name


# -- the saved calls ---------------------------------------------------------------------

def saved_calls() -> list[Call]:
    return [Call(ts=1.0, end=1.000002, pid=7, comm="prog", name="connect", fd=3,
                 args="127.0.0.1:80", ret=-1, errno="ECONNREFUSED", local="127.0.0.1:5000",
                 peer="127.0.0.1:80", conn=1, side="client", cause="← RST, frame 2"),
            Call(kind=SIGNAL, ts=1.5, pid=7, name="SIGPIPE", args="ignored by the process"),
            Call(kind=EXIT, ts=2.0, pid=7, name="exit", ret=0)]


@pytest.mark.parametrize("suffix", [".pcapng", ".pcap"])
def test_calls_saved_with_the_packets_read_back(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    writer = PcapWriter(str(path), 1, 262144)
    frame = bytes(14 + 40)
    writer.write(1, 0, frame, len(frame))
    writer.write_calls(saved_calls()[:2])
    writer.write(2, 0, frame, len(frame))
    writer.write_calls(saved_calls()[2:])
    writer.close()
    back = read_calls(str(path))
    assert [c.as_dict() for c in back] == [c.as_dict() for c in saved_calls()]
    assert Path(sidecar(str(path))).exists() == (suffix == ".pcap")
    if suffix == ".pcapng" and shutil.which("tshark"):
        res = subprocess.run(["tshark", "-r", str(path)], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0, res.stderr
        shown = res.stdout.splitlines()
        assert sum("Ethernet II" in line for line in shown) == 2  # both packets
        assert all("Ethernet II" in line or "Custom Block" in line for line in shown)


def test_a_fin_long_after_close_was_sent_by_the_kernel_for_the_orphan():
    anns, calls = conversation()
    calls["close"] = call(anns[5].seg.ts - 0.012, "s", "close", fd=4, ret=0)
    linked(anns, calls)
    assert anns[5].cause == ("FIN_WAIT_1 ← close(fd 4), pid 900, server; sent by the kernel "
                             "12 ms after it returned: the closed socket (an orphan, no "
                             "descriptor left) sends its queued data, then the FIN")


def test_a_fin_after_the_process_exited_without_close_comes_from_the_exit():
    anns, calls = conversation()
    del calls["close"]
    calls["exit"] = Call(kind=EXIT, ts=anns[5].seg.ts - 0.001, pid=900, comm="prog",
                         name="exit", ret=0)
    linked(anns, calls)
    assert anns[5].cause == ("FIN_WAIT_1 ← the kernel: process 900 exited without close(); "
                             "exit closed its socket")


def test_the_trace_clock_offset_comes_from_the_tightest_reading(monkeypatch):
    # TAI is REALTIME + 37 s; the first try is preempted for 5 ms between its readings,
    # which once shifted every call after the segment it sent (CI: "shutdown() was
    # entered after the segment").
    from rawinspect.sources import tracefs
    clock = iter([100.0, 137.005, 100.0051,                 # preempted before TAI was read
                  *[x for i in range(6) for x in (101.0 + i, 138.0 + i + 1e-7,
                                                   101.0 + i + 2e-7)]])
    monkeypatch.setattr(tracefs.time, "time", lambda: next(clock))
    monkeypatch.setattr(tracefs.time, "clock_gettime", lambda _: next(clock))
    assert tracefs.tai_offset() == pytest.approx(37.0, abs=1e-6)
