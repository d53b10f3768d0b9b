"""Live packets from a Linux packet socket, one copy each, with kernel timestamps.

The capture filter is compiled by scapy (which asks libpcap, no tcpdump binary needed)
and attached to the socket, so non-matching packets never leave the kernel. Scapy's
per-packet dissection stays off the hot path: records come out as raw bytes.

Loopback shows each packet twice, once leaving (PACKET_OUTGOING) and once arriving.
libpcap drops the outgoing copy in user space; we drop it in the kernel instead, with
three BPF instructions put in front of the compiled filter, so the duplicate costs
neither socket buffer nor a system call.

Packets arrive through the kernel's memory-mapped ring (``ring``, TPACKET_V3, as libpcap
reads them): a block of packets per wake-up, no system call per packet. Where the ring
cannot be set up (or RAWINSPECT_NO_RING is set), one ``recvmsg`` per packet reads them
instead, and one line on stderr says so. Both give the kernel's receive timestamps.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shlex
import socket
import struct
import sys
from pathlib import Path

from .decode import LT_ETHERNET, LT_RAW
from .packet_source import Packet
from .ring import Ring, ring_layout

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_STATISTICS = 6
SO_RCVBUFFORCE = 33
SO_TIMESTAMPNS = 35
SO_ATTACH_FILTER = 26
PACKET_OUTGOING = 4
SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: "ld pkttype"

ARPHRD_ETHER, ARPHRD_LOOPBACK, ARPHRD_NONE = 1, 772, 0xFFFE
LINKTYPE_OF_ARPHRD = {ARPHRD_ETHER: LT_ETHERNET, ARPHRD_LOOPBACK: LT_ETHERNET,
                      ARPHRD_NONE: LT_RAW}

DEFAULT_SNAPLEN = 262144
DEFAULT_BUFFER = 64 << 20  # bytes of socket receive buffer: absorbs bursts
# ld pkttype; jeq #PACKET_OUTGOING → ret #0, else go on to the user's filter.
DROP_OUTGOING = ((0x20, 0, 0, SKF_AD_PKTTYPE), (0x15, 0, 1, PACKET_OUTGOING), (0x06, 0, 0, 0))

_timespec = struct.Struct("qq").unpack_from
_stats = struct.Struct("II").unpack


class SnifferError(Exception):
    """The capture cannot start: a one-line reason."""


class NoPrivilegeError(SnifferError):
    """Opening a packet socket needs root or CAP_NET_RAW."""


def privilege_hint() -> str:
    """How to capture without root: sudo, or the capability on a copy of this Python.

    ``setcap`` on ``python3`` itself would do nothing where that is a script or a link
    (pyenv, a virtual environment) and, where it works, let every Python program open
    raw sockets; a copy kept beside the environment's Python grants it to this one only.
    """
    python = shlex.quote(sys.executable)
    copy = shlex.quote(os.path.join(sys.prefix, "bin", "python3-capture"))
    return ("live capture needs root or CAP_NET_RAW. Run it with sudo:\n"
            f"  sudo {python} -m rawinspect capture ...\n"
            "or give the capability to a copy of Python used only for capturing:\n"
            f"  cp \"$(readlink -f {python})\" {copy}\n"
            f"  sudo setcap cap_net_raw,cap_net_admin+eip {copy}\n"
            f"  {copy} -m rawinspect capture ...")


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def interface_linktype(iface: str) -> tuple[int, bool]:
    """(pcap link type, is loopback) of a Linux interface."""
    try:
        hatype = int(Path(f"/sys/class/net/{iface}/type").read_text())
    except (OSError, ValueError):
        raise SnifferError(f"-i {iface}: no such network interface") from None
    if hatype not in LINKTYPE_OF_ARPHRD:
        raise SnifferError(f"-i {iface}: unsupported interface type (ARPHRD {hatype})")
    return LINKTYPE_OF_ARPHRD[hatype], hatype == ARPHRD_LOOPBACK


def compile_bpf(expression: str, linktype: int) -> list[tuple[int, int, int, int]]:
    """BPF instructions for a tcpdump-syntax filter, compiled by scapy through libpcap."""
    try:
        from scapy.arch.common import compile_filter  # type: ignore[import]
        from scapy.error import Scapy_Exception  # type: ignore[import]
    except ImportError as e:  # pragma: no cover - scapy is a dependency
        raise SnifferError(f"scapy is needed for capture filters: {e}") from None
    try:
        prog = compile_filter(expression, linktype=linktype)
    except (ImportError, OSError) as e:
        raise SnifferError(f"cannot compile the capture filter: {e} "
                           "(install libpcap: apt-get install libpcap0.8)") from None
    except Scapy_Exception as e:
        raise SnifferError(f"bad capture filter {expression!r}: {e}") from None
    insns = [(i.code, i.jt, i.jf, i.k) for i in prog.bf_insns[:prog.bf_len]]
    return insns


def attach_bpf(sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
    """Attach classic BPF instructions to a socket (SO_ATTACH_FILTER)."""
    arr = (_SockFilter * len(insns))(*[_SockFilter(*i) for i in insns])
    prog = _SockFprog(len(insns), arr)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(prog))


class Sniffer:
    """A packet socket bound to one interface, filter attached before any packet arrives.

    A ``PacketSource``: the capture loop polls ``fileno()`` and drains ``read()``.
    """

    def __init__(self, iface: str = "lo", expression: str = "tcp",
                 snaplen: int = DEFAULT_SNAPLEN, bufsize: int = DEFAULT_BUFFER) -> None:
        self.iface = iface
        self.linktype, self.loopback = interface_linktype(iface)
        insns = compile_bpf(expression, self.linktype)
        if self.loopback:
            insns = list(DROP_OUTGOING) + insns
        self.snaplen = snaplen
        try:
            # Protocol 0 receives nothing until bind(): the filter is in place first.
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError:
            raise NoPrivilegeError(privilege_hint()) from None
        self.sock = sock
        self.ring: Ring | None = None
        try:
            attach_bpf(sock, insns)
            # Timestamps on: the kernel stamps each packet as it arrives, and the ring's
            # tp_sec/tp_nsec are that stamp, as recvmsg's SO_TIMESTAMPNS would be.
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            self.ring = _open_ring(sock, iface, bufsize, snaplen)
            if self.ring is None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, bufsize)
                except PermissionError:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
            sock.bind((iface, ETH_P_ALL))
            sock.setblocking(False)
        except OSError as e:
            self._release()
            raise SnifferError(f"-i {iface}: cannot capture: {e.strerror or e}") from None
        self.buf = bytearray(snaplen if self.ring is None else 0)
        self.dropped = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def read(self, limit: int) -> list[Packet]:
        """Up to ``limit`` waiting packets as (sec, nsec, captured bytes, wire length)."""
        if self.ring is not None:
            return self.ring.read(limit)
        recv = self.sock.recvmsg_into
        buf, view, snaplen = self.buf, memoryview(self.buf), self.snaplen
        flags = socket.MSG_TRUNC
        out: list[Packet] = []
        append = out.append
        for _ in range(limit):
            try:
                wirelen, anc, _f, _a = recv((buf,), 64, flags)
            except BlockingIOError:
                break
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            caplen = wirelen if wirelen < snaplen else snaplen
            sec = nsec = 0
            for level, kind, data in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _timespec(data)
            append((sec, nsec, bytes(view[:caplen]), wirelen))
        return out

    def poll_drops(self) -> int:
        """Packets the kernel dropped so far (PACKET_STATISTICS counters reset on read;
        with the ring, tpacket_stats_v3 begins with the same two counters)."""
        try:
            _packets, drops = _stats(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        except OSError as e:  # pragma: no cover - a closed socket
            if e.errno != errno.EBADF:
                raise
            return self.dropped
        self.dropped += drops
        return self.dropped

    def close(self) -> None:
        if self.sock.fileno() >= 0:
            self.poll_drops()
            self._release()

    def _release(self) -> None:
        if self.ring is not None:
            self.ring.close()
        self.sock.close()


def _open_ring(sock: socket.socket, iface: str, bufsize: int, snaplen: int) -> Ring | None:
    """The socket's receive ring of ``bufsize`` bytes; None, said on stderr, where there is
    none (RAWINSPECT_NO_RING set, or the kernel refused it)."""
    if os.environ.get("RAWINSPECT_NO_RING"):
        why = "RAWINSPECT_NO_RING is set"
    else:
        try:
            return Ring(sock, ring_layout(bufsize), snaplen)
        except OSError as e:
            why = f"no packet ring: {e.strerror or e}"
    print(f"rawinspect: -i {iface}: {why}; reading one packet per system call",
          file=sys.stderr)
    return None
