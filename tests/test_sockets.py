"""The sockets left behind: sock_diag messages parsed from bytes, the view's lines, and the
kernel's own answer for loopback sockets this test opens (no privilege needed)."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rawinspect.sources.sockets import (DIAG_MSG, NLMSG_DONE, NLMSG_ERROR, NLMSG_HDR,
                                        SOCK_DIAG_BY_FAMILY, SOCKID, Owner, SocketRecord,
                                        SocketsUnavailable, dump, fin_timeout, owners_by_inode,
                                        parse_messages, request, tcp_sockets)
from rawinspect.views.left_behind import TIME_WAIT_LEN, as_dict, left_behind_lines, socket_line

TIME_WAIT, FIN_WAIT2, LISTEN = 6, 5, 10


def nlmsg(kind: int, payload: bytes) -> bytes:
    """A netlink message, padded to 4 bytes as the kernel sends it."""
    msg = NLMSG_HDR.pack(NLMSG_HDR.size + len(payload), kind, 2, 1, 0) + payload
    return msg + bytes(-len(msg) % 4)


def diag_msg(family: int, state: int, src: str, sport: int, dst: str, dport: int,
             timer: int = 0, expires_ms: int = 0, rq: int = 0, wq: int = 0,
             uid: int = 1000, inode: int = 0) -> bytes:
    """An inet_diag_msg as the kernel writes it, with one attribute after it."""
    sockid = SOCKID.pack(sport, dport, socket.inet_pton(family, src).ljust(16, b"\0"),
                         socket.inet_pton(family, dst).ljust(16, b"\0"), 0, bytes(8))
    attr = struct.pack("=HHB3x", 5, 8, 0)  # INET_DIAG_SHUTDOWN, ignored
    return DIAG_MSG.pack(family, state, timer, 2, sockid, expires_ms, rq, wq, uid,
                         inode) + attr


def test_request_asks_for_every_tcp_socket_of_the_family() -> None:
    msg = request(socket.AF_INET6)
    length, kind, flags, _, _ = NLMSG_HDR.unpack_from(msg)
    assert (length, kind, flags) == (len(msg), SOCK_DIAG_BY_FAMILY, 0x301) and length == 72
    family, proto, _, _, states = struct.unpack_from("=BBBBI", msg, NLMSG_HDR.size)
    assert (family, proto, states) == (socket.AF_INET6, socket.IPPROTO_TCP, 0xFFFFFFFF)


def test_parse_a_dump_part_with_ipv4_and_ipv6_and_its_end() -> None:
    data = (nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(socket.AF_INET, TIME_WAIT, "127.0.0.1", 41234,
                                                "127.0.0.1", 5000, timer=3, expires_ms=59200))
            + nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(socket.AF_INET6, LISTEN, "::1", 5000, "::", 0,
                                                  rq=1, wq=128, inode=4242))
            + nlmsg(NLMSG_DONE, bytes(4)))
    (tw, listen), done = parse_messages(data)
    assert done
    assert tw == SocketRecord("TIME_WAIT", "127.0.0.1", 41234, "127.0.0.1", 5000,
                              "time-wait", 59.2, 2, 0, 0, 1000, 0)
    assert (tw.local, tw.remote) == ("127.0.0.1:41234", "127.0.0.1:5000")
    assert (listen.state, listen.local, listen.remote) == ("LISTEN", "[::1]:5000", "[::]:*")
    assert (listen.timer, listen.expires, listen.recv_q, listen.send_q, listen.inode) == \
        ("", 0.0, 1, 128, 4242)


def test_a_part_without_its_end_is_not_done() -> None:
    data = nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(socket.AF_INET, FIN_WAIT2, "10.0.0.1", 1,
                                               "10.0.0.2", 2, timer=3, expires_ms=1500))
    records, done = parse_messages(data)
    assert not done and [(r.state, r.expires) for r in records] == [("FIN_WAIT_2", 1.5)]


def test_a_netlink_error_is_its_errno() -> None:
    with pytest.raises(PermissionError, match="Operation not permitted"):
        parse_messages(nlmsg(NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + bytes(16)))
    assert parse_messages(nlmsg(NLMSG_ERROR, struct.pack("=i", 0) + bytes(16))) == ([], False)


def test_truncated_messages_are_refused() -> None:
    whole = nlmsg(SOCK_DIAG_BY_FAMILY, diag_msg(socket.AF_INET, LISTEN, "0.0.0.0", 80,
                                                "0.0.0.0", 0))
    with pytest.raises(SocketsUnavailable, match="truncated netlink message at byte 0"):
        parse_messages(whole[:40])
    short = nlmsg(SOCK_DIAG_BY_FAMILY, bytes(20))
    with pytest.raises(SocketsUnavailable, match="a message of 20 bytes"):
        parse_messages(short)


def fake_proc(tmp_path: Path) -> Path:
    """/proc with two processes sharing socket 7, one without fd/ (it exited), and `self`."""
    for pid, links in ((100, ["socket:[7]", "pipe:[3]"]), (200, ["socket:[7]", "socket:[9]"])):
        (tmp_path / str(pid) / "fd").mkdir(parents=True)
        (tmp_path / str(pid) / "comm").write_text(f"prog{pid}\n")
        for fd, target in enumerate(links):
            os.symlink(target, tmp_path / str(pid) / "fd" / str(fd))
    (tmp_path / "300").mkdir()
    (tmp_path / "self").mkdir()
    return tmp_path


def test_owners_by_inode_from_proc(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path)
    owners = owners_by_inode({7, 9, 11, 0}, proc)
    assert sorted(owners[7]) == [Owner(100, "prog100"), Owner(200, "prog200")]
    assert owners[9] == (Owner(200, "prog200"),) and 11 not in owners
    assert owners_by_inode({0}, proc) == {}
    assert sum(len(o) for o in owners_by_inode({7, 9}, proc, max_fds=1).values()) <= 1


def test_fin_timeout(tmp_path: Path) -> None:
    (tmp_path / "ok").write_text("30\n")
    (tmp_path / "bad").write_text("x")
    assert (fin_timeout(tmp_path / "ok"), fin_timeout(tmp_path / "bad"),
            fin_timeout(tmp_path / "none")) == (30, None, None)


def record(state: str, local_port: int, remote_port: int, timer: str = "",
           expires: float = 0.0, retrans: int = 0, recv_q: int = 0, send_q: int = 0,
           uid: int = 1000, inode: int = 0, owners: tuple[Owner, ...] = ()) -> SocketRecord:
    """A record on 127.0.0.1 (a listener when ``remote_port`` is 0)."""
    return SocketRecord(state, "127.0.0.1", local_port, "127.0.0.1" if remote_port else
                        "0.0.0.0", remote_port, timer, expires, retrans, recv_q, send_q, uid,
                        inode, owners)


def test_nothing_left_prints_nothing() -> None:
    assert left_behind_lines([]) == []


def test_lines_are_grouped_by_state_with_their_lesson() -> None:
    me = (Owner(1234, "python3"),)
    lines = left_behind_lines([
        record("TIME_WAIT", 41234, 5000, timer="time-wait", expires=59.24),
        record("CLOSE_WAIT", 5000, 41236, recv_q=6, inode=9, owners=me),
        record("LISTEN", 5000, 0, send_q=128, inode=8, owners=me),
        record("FIN_WAIT_2", 41236, 5000, timer="time-wait", expires=12.0),
        record("ESTABLISHED", 41238, 5000, send_q=3, inode=10, uid=1001,
               timer="retransmission", expires=0.2, retrans=2),
    ], fin_timeout=60)
    assert lines[0].startswith("sockets left on the captured ports")
    heads = [line.split(" (")[0].strip() for line in lines[1:] if not line.startswith("    ")]
    assert heads == ["LISTEN", "ESTABLISHED", "FIN_WAIT_2", "TIME_WAIT", "CLOSE_WAIT"]
    text = "\n".join(lines)
    assert ("    127.0.0.1:41234 → 127.0.0.1:5000  timer 59.2 s left  no process: the kernel "
            "keeps it") in text
    assert "TIME_WAIT (1): the side that closed first keeps it 60 s (TCP_TIMEWAIT_LEN)" in text
    assert "SO_REUSEADDR" in text and "tcp_fin_timeout (60 s here)" in text
    assert ("    127.0.0.1:5000  accept queue 0 of 128  pid 1234 python3") in lines
    assert ("Recv-Q 6: 5 bytes unread and the FIN, close() sends RST  pid 1234 python3"
            in text)
    assert "tcp_fin_timeout 12.0 s left" in text
    assert ("retransmission timer 0.2 s left, 2 sent again  Send-Q 3: not yet acknowledged  "
            "owner not visible (uid 1001;") in text
    assert "never called close()" in text


def test_close_wait_with_only_the_fin_unread() -> None:
    line = socket_line(record("CLOSE_WAIT", 5000, 41236, recv_q=1, inode=9))
    assert "Recv-Q 1: the FIN, not yet read" in line and "RST" not in line


def test_as_dict_is_json_with_the_lesson() -> None:
    d = as_dict(record("TIME_WAIT", 41234, 5000, timer="time-wait", expires=59.2345))
    assert json.loads(json.dumps(d)) == d
    assert (d["state"], d["local"], d["remote"], d["timer"], d["expires"], d["owners"]) == \
        ("TIME_WAIT", "127.0.0.1:41234", "127.0.0.1:5000", "time-wait", 59.234, [])
    assert d["lesson"].startswith("the side that closed first")
    listen = as_dict(record("LISTEN", 5000, 0, inode=3, owners=(Owner(1, "init"),)))
    assert (listen["timer"], listen["expires"], listen["owners"]) == \
        (None, None, [{"pid": 1, "name": "init"}])


# Live: loopback sockets this process opens; sock_diag needs no privilege for them.

def test_a_family_without_a_sock_diag_handler_has_no_sockets() -> None:
    assert dump(socket.AF_APPLETALK) == []  # the kernel answers ENOENT, as for IPv6 off


def wait_for(ports: list[int], done: Callable[[list[SocketRecord]], bool]) -> list[SocketRecord]:
    """The sockets on ``ports`` once ``done`` holds, polled for at most 2 s."""
    records: list[SocketRecord] = []
    for _ in range(100):
        records = tcp_sockets(ports)
        if done(records):
            break
        time.sleep(0.02)
    return records


def states(records: list[SocketRecord]) -> set[str]:
    """The states present."""
    return {r.state for r in records}


def my_comm() -> str:
    """This process's name, as /proc/PID/comm gives it."""
    return Path(f"/proc/{os.getpid()}/comm").read_text().strip()


@pytest.fixture
def listener() -> socket.socket:
    """A loopback listener on a free port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    return s


def test_live_time_wait_after_the_client_closes_first(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with listener, socket.create_connection(("127.0.0.1", port), timeout=2) as client:
        cport = client.getsockname()[1]
        conn, _ = listener.accept()
        client.close()
        assert conn.recv(10) == b""
        conn.close()
        records = wait_for([port], lambda rs: "TIME_WAIT" in states(rs))
        tw = [r for r in records if r.state == "TIME_WAIT"]
        assert [(r.local_port, r.remote_port) for r in tw] == [(cport, port)], records
        assert tw[0].timer == "time-wait"
        assert TIME_WAIT_LEN - 5 < tw[0].expires <= TIME_WAIT_LEN
        assert (tw[0].inode, tw[0].owners) == (0, ())
        listen = [r for r in records if r.state == "LISTEN"]
        assert [r.owners for r in listen] == [(Owner(os.getpid(), my_comm()),)], records
        text = "\n".join(left_behind_lines(records))
        assert f"127.0.0.1:{cport} → 127.0.0.1:{port}  timer {tw[0].expires:.1f} s left" in text


def test_live_close_wait_when_the_server_never_closes(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    with listener, socket.create_connection(("127.0.0.1", port), timeout=2) as client:
        cport = client.getsockname()[1]
        conn, _ = listener.accept()
        with conn:
            client.sendall(b"hello")
            client.close()
            records = wait_for([cport], lambda rs: states(rs) == {"CLOSE_WAIT", "FIN_WAIT_2"})
            by_state = {r.state: r for r in records}
            wait = by_state["CLOSE_WAIT"]
            assert (wait.local_port, wait.remote_port, wait.recv_q) == (port, cport, 6)
            assert wait.owners == (Owner(os.getpid(), my_comm()),) and wait.inode
            fin2 = by_state["FIN_WAIT_2"]  # an orphan: the kernel's fin_timeout runs
            assert (fin2.inode, fin2.timer) == (0, "time-wait")
            assert 0 < fin2.expires <= (fin_timeout() or 60)
            assert "5 bytes unread and the FIN" in "\n".join(left_behind_lines(records))
