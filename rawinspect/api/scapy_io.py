"""Scapy's packets as packet records: the link type, the time and the bytes of each.

``rawinspect.annotate`` and ``rawinspect.printer`` take what scapy gives (``sniff()``,
``rdpcap()``, a ``PacketList``, packets built with its layers) or plain
``(timestamp, bytes, linktype)`` tuples. The link type of a scapy packet is the one scapy
itself writes in a pcap file for its first layer (Ethernet, BSD loopback, raw IP, Linux
cooked v1 and v2). Scapy's default sniffer on a loopback interface sees each packet twice
(leaving and arriving, the same bytes at once); the second copy is dropped, as libpcap
does.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

# One packet: (link type, timestamp in seconds, captured bytes, length on the wire).
RawPacket = tuple[int, float, bytes, int]
LOOPBACK_COPY_WINDOW = 0.05  # seconds: loopback's two copies come this close, even on a
# loaded machine (the second is stamped when the receive side runs); TCP never sends
# byte-identical segments this close (the IP ID and the timestamp option move on)
ARPHRD_LOOPBACK = 772


class PacketError(ValueError):
    """An item that is neither a scapy packet nor a (timestamp, bytes, linktype) tuple."""


def _scapy_linktype(pkt: Any) -> int:
    from scapy.config import conf  # type: ignore[import]
    linktype = conf.l2types.layer2num.get(type(pkt))
    if linktype is None:
        raise PacketError(f"scapy packet {pkt.summary()!r}: its first layer "
                          f"{type(pkt).__name__} has no pcap link type")
    return int(linktype)


def _is_loopback(iface: object) -> bool:
    """Whether a scapy ``sniffed_on`` names a loopback interface."""
    return _loopback_name(str(getattr(iface, "name", iface) or ""))


@lru_cache(maxsize=64)
def _loopback_name(name: str) -> bool:
    """Whether interface ``name`` is a loopback (its type read once from sysfs)."""
    if not name or "/" in name:
        return False
    try:
        return int(Path(f"/sys/class/net/{name}/type").read_text()) == ARPHRD_LOOPBACK
    except (OSError, ValueError):
        return name == "lo"


def to_raw(item: Any, number: int) -> tuple[RawPacket, bool]:
    """One item as a packet record, and whether scapy sniffed it on a loopback interface.

    ``number`` (1-based) names the item in the error raised for anything else.
    """
    if isinstance(item, tuple) and len(item) == 3:
        ts, data, linktype = item
        if isinstance(data, (bytes, bytearray, memoryview)) and isinstance(linktype, int):
            data = bytes(data)
            return (linktype, float(ts), data, len(data)), False
    if hasattr(item, "summary") and hasattr(item, "time"):
        data = bytes(item)
        wirelen = getattr(item, "wirelen", None) or len(data)
        return ((_scapy_linktype(item), float(item.time), data, int(wirelen)),
                _is_loopback(getattr(item, "sniffed_on", None)))
    raise PacketError(f"packet {number}: expected a scapy packet or a (timestamp, bytes, "
                      f"linktype) tuple, got {type(item).__name__}")


def loopback_copy(last: RawPacket | None, packet: RawPacket, loopback: bool) -> bool:
    """Whether ``packet``, sniffed on a loopback interface, is the second copy of ``last``."""
    return (loopback and last is not None and packet[2] == last[2]
            and 0 <= packet[1] - last[1] <= LOOPBACK_COPY_WINDOW)


def raw_packets(items: Iterable[Any]) -> Iterator[RawPacket]:
    """Every item as a packet record, loopback's second copies left out."""
    last: RawPacket | None = None
    for number, item in enumerate(items, 1):
        packet, loopback = to_raw(item, number)
        if loopback_copy(last, packet, loopback):
            last = None  # a third identical packet is a real one again
            continue
        last = packet
        yield packet
