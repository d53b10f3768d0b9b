"""TCP options, parsed on demand from the raw bytes a Segment keeps (``Segment.raw_opts``).

The decoder only slices the option bytes out of the header; renderers that show options
parse them here, so replay pays for parsing only when options are printed. Parsing never
raises: a length below 2 or beyond the header stops it, a known kind with the wrong length
is skipped, and both set ``malformed``.
"""

from __future__ import annotations

import struct
from typing import Callable, Final

from .segment import Segment

MASK32: Final = 0xFFFFFFFF
WSCALE_MAX: Final = 14  # RFC 7323: a larger shift is used as 14

_u16: Final[Callable[[bytes, int], tuple[int]]] = struct.Struct("!H").unpack_from
_u32x2: Final[Callable[[bytes, int], tuple[int, int]]] = struct.Struct("!II").unpack_from
_TS_ONLY: Final = b"\x01\x01\x08\x0a"  # NOP NOP timestamps: Linux on every segment

# Kind → the only valid length (SACK and TFO vary, checked apart).
_FIXED: Final[dict[int, int]] = {2: 4, 3: 3, 4: 2, 8: 10}


class TcpOptions:
    """The options of one segment. Absent numbers are -1.

    ``wscale`` is the shift as sent (``ws_multiplier`` applies RFC 7323's cap of 14);
    ``sack`` holds the SACK blocks' absolute (left, right) edges; ``tfo`` the Fast Open
    cookie's length (0: a cookie request); ``unknown`` other kinds by number, in order;
    ``kinds`` every kind seen once, in order of appearance (without NOP and EOL).
    """

    __slots__ = ("mss", "wscale", "sack_perm", "ts_val", "ts_ecr", "sack", "tfo",
                 "unknown", "kinds", "malformed")

    def __init__(self) -> None:
        self.mss = -1
        self.wscale = -1
        self.sack_perm = False
        self.ts_val = -1
        self.ts_ecr = -1
        self.sack: list[tuple[int, int]] = []
        self.tfo = -1
        self.unknown: list[int] = []
        self.kinds: list[int] = []
        self.malformed = False

    @property
    def ws_multiplier(self) -> int:
        """What the window field is multiplied by: 2**shift (shift capped at 14); 1 if none."""
        return 1 << min(self.wscale, WSCALE_MAX) if self.wscale >= 0 else 1


def parse_options(raw: bytes) -> TcpOptions:
    """Walk the option bytes of a TCP header (everything after the first 20 bytes)."""
    o = TcpOptions()
    pos, end = 0, len(raw)
    while pos < end:
        kind = raw[pos]
        if kind == 0:
            break
        if kind == 1:
            pos += 1
            continue
        length = raw[pos + 1] if pos + 1 < end else 0
        if length < 2 or pos + length > end:
            o.malformed = True
            break
        if _FIXED.get(kind, length) != length or (kind == 5 and length % 8 != 2):
            o.malformed = True
        else:
            _store(o, raw, pos, kind, length)
        pos += length
    return o


def _store(o: TcpOptions, raw: bytes, pos: int, kind: int, length: int) -> None:
    """One well-formed option into ``o``."""
    if kind not in o.kinds:
        o.kinds.append(kind)
    if kind == 2:
        o.mss = _u16(raw, pos + 2)[0]
    elif kind == 3:
        o.wscale = raw[pos + 2]
    elif kind == 4:
        o.sack_perm = True
    elif kind == 8:
        o.ts_val, o.ts_ecr = _u32x2(raw, pos + 2)
    elif kind == 5:
        o.sack = [_u32x2(raw, p) for p in range(pos + 2, pos + length, 8)]
    elif kind == 34:
        o.tfo = length - 2
    else:
        o.unknown.append(kind)


def syn_options(raw: bytes) -> dict[str, int]:
    """``Segment.opts`` of a SYN: mss, wscale (capped at 14), sack_perm, tfo, when present."""
    o = parse_options(raw)
    opts: dict[str, int] = {}
    if o.mss >= 0:
        opts["mss"] = o.mss
    if o.wscale >= 0:
        opts["wscale"] = min(o.wscale, WSCALE_MAX)
    if o.sack_perm:
        opts["sack_perm"] = 1
    if o.tfo >= 0:
        opts["tfo"] = o.tfo
    return opts


def options_json(raw: bytes, ack: int, rel_ack: int) -> str:
    """The options as a JSON object of those present; SACK edges relative like ``rel_ack``.

    Keys, in this order: mss, wscale (the shift), sack_perm, ts ([TSval, TSecr]), sack
    ([[left, right], ...]), tfo (cookie length), unknown (kinds), malformed.
    """
    if not raw:
        return "{}"
    if len(raw) == 12 and raw[:4] == _TS_ONLY:
        val, ecr = _u32x2(raw, 4)
        return f'{{"ts":[{val},{ecr}]}}'
    o = parse_options(raw)
    parts: list[str] = []
    if o.mss >= 0:
        parts.append(f'"mss":{o.mss}')
    if o.wscale >= 0:
        parts.append(f'"wscale":{o.wscale}')
    if o.sack_perm:
        parts.append('"sack_perm":true')
    if o.ts_val >= 0:
        parts.append(f'"ts":[{o.ts_val},{o.ts_ecr}]')
    if o.sack:
        shift = rel_ack - ack
        parts.append('"sack":[' + ",".join(
            f"[{(le + shift) & MASK32},{(re + shift) & MASK32}]" for le, re in o.sack) + "]")
    if o.tfo >= 0:
        parts.append(f'"tfo":{o.tfo}')
    if o.unknown:
        parts.append('"unknown":[' + ",".join([str(k) for k in o.unknown]) + "]")
    if o.malformed:
        parts.append('"malformed":true')
    return "{" + ",".join(parts) + "}"


def options_text(seg: Segment, rel_ack: int = -1) -> str:
    """Wireshark's compact form, in the order sent: ``MSS=65495 SACK_PERM TSval=1 TSecr=0 WS=128``.

    SACK blocks read ``SLE=… SRE=…``: relative when given the annotation's ``rel_ack``
    (as Wireshark shows them), else absolute. Also ``TFO=R`` (cookie request) or ``TFO=C``,
    ``OPT=<kind>`` for unknown kinds, and ``MALFORMED`` last. "" when there are none.
    """
    if not seg.raw_opts:
        return ""
    o = parse_options(seg.raw_opts)
    shift = rel_ack - seg.ack if rel_ack >= 0 else 0
    words: list[str] = []
    for kind in o.kinds:
        if kind == 2:
            words.append(f"MSS={o.mss}")
        elif kind == 3:
            words.append(f"WS={o.ws_multiplier}")
        elif kind == 4:
            words.append("SACK_PERM")
        elif kind == 8:
            words.append(f"TSval={o.ts_val} TSecr={o.ts_ecr}")
        elif kind == 5:
            words.extend(f"SLE={(le + shift) & MASK32} SRE={(re + shift) & MASK32}"
                         for le, re in o.sack)
        elif kind == 34:
            words.append("TFO=C" if o.tfo else "TFO=R")
    words.extend(f"OPT={k}" for k in o.unknown)
    if o.malformed:
        words.append("MALFORMED")
    return " ".join(words)
