"""A running process to follow (``capture --pid``): its threads, its children, its sockets.

Read from /proc once, when following starts; the call trace follows every process it
forks from then on, and its existing TCP sockets are named from the kernel's socket table
(sock_diag), so calls on them join their connections.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from .sockets import SocketsUnavailable, dump

PROC = Path("/proc")


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie counts as ended)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def task_name(tid: int) -> str:
    """A task's name (comm), "" once it has ended."""
    try:
        return (PROC / str(tid) / "comm").read_text().rstrip("\n")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in (PROC / str(pid) / "task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def process_tree(pid: int, limit: int = 10000) -> tuple[list[int], list[int]]:
    """``pid`` and its descendants (process ids), and all their threads (task ids); at
    most ``limit`` tasks."""
    processes: list[int] = []
    tasks: list[int] = []
    todo = [pid]
    while todo and len(tasks) < limit:
        p = todo.pop()
        try:
            tasks += [int(t.name) for t in (PROC / str(p) / "task").iterdir()]
        except OSError:
            continue
        processes.append(p)
        todo += _children(p)
    return processes, tasks[:limit]


def open_sockets(pids: list[int]) -> dict[int, dict[int, tuple[int, str, str]]]:
    """Per process, its TCP sockets by descriptor: (family, local, peer)."""
    try:
        by_inode = {r.inode: (family, r.local, r.remote) for family in
                    (socket.AF_INET, socket.AF_INET6) for r in dump(family) if r.inode}
    except SocketsUnavailable:
        return {}
    out: dict[int, dict[int, tuple[int, str, str]]] = {}
    for pid in pids:
        fds = out.setdefault(pid, {})
        try:
            entries = list(os.scandir(PROC / str(pid) / "fd"))
        except OSError:
            continue
        for entry in entries:
            try:
                link = os.readlink(entry.path)
            except OSError:
                continue
            if link.startswith("socket:[") and int(link[8:-1]) in by_inode:
                family, local, peer = by_inode[int(link[8:-1])]
                fds[int(entry.name)] = (family, local, "" if peer.endswith(":*") else peer)
    return out
