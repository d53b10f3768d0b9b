"""JSON lines: one object per TCP segment, one per UDP datagram, and one per traced call,
signal or exit (its ``kind`` says which; segments have none); keys documented in the
README."""

from __future__ import annotations

import json
from typing import Final, TextIO

from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..core.options import options_json
from ..core.segment import FLAG_LETTERS

EMPTY: Final = '""'
CAUSE: Final = ',"cause":'

_dumps = json.dumps


def seconds6(ts: float) -> str:
    """``ts`` rounded to the microsecond, six decimals; three times as fast as ``.6f``.

    The same as ``f"{ts:.6f}"`` for microsecond timestamps (a float near 2·10⁹ s is within
    0.12 µs of the microsecond it was read as); from a nanosecond capture, a time exactly
    between two microseconds may round the other way.
    """
    digits = str(int(ts * 1e6 + 0.5))
    if len(digits) < 7:
        digits = digits.rjust(7, "0")
    return f"{digits[:-6]}.{digits[-6:]}"


def names_json(names: list[str]) -> str:
    """A list of names that JSON writes as they are (states, Wireshark's flag names:
    ASCII, no quote or backslash) as ``json.dumps`` writes it, in a tenth of the time."""
    return '["' + '", "'.join(names) + '"]'


class JsonlRenderer:
    """Writes one JSON object per annotation; formats by hand on the hot path."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._write = out.write
        self._cache: dict[str, str] = {}
        self._tails: dict[tuple[str, str, str], str] = {}

    def _json(self, text: str) -> str:
        s = self._cache.get(text)
        if s is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            s = self._cache[text] = _dumps(text)
        return s

    def _tail(self, a: Annotation) -> str:
        """States, paths, event, analysis and note: the part between the numbers."""
        cp, sp = a.client_path, a.server_path
        return (f'"client_before":"{a.client_before}","client_after":"{a.client_after}",'
                f'"server_before":"{a.server_before}","server_after":"{a.server_after}",'
                f'"client_path":{names_json(cp) if cp else "null"},'
                f'"server_path":{names_json(sp) if sp else "null"},'
                f'"event":"{a.event}","analysis":'
                f'{names_json(a.analysis) if a.analysis else "[]"},'
                f'"note":{self._json(a.note) if a.note else EMPTY},')

    def write(self, anns: list[Annotation]) -> None:
        tails = self._tails
        letters = FLAG_LETTERS
        lines = []
        for a in anns:
            seg = a.seg
            raw = seg.raw_opts
            if a.client_path or a.server_path or a.analysis or a.note:
                tail = self._tail(a)
            else:  # no state change and nothing to say: the tail repeats, cache it
                key = (a.client_before, a.server_before, a.event)
                cached = tails.get(key)
                if cached is None:
                    cached = tails[key] = self._tail(a)
                tail = cached
            # client and server are "ip:port" made from parsed addresses: nothing to escape.
            # (No format spec in this f-string: mypyc would format every field through
            # str.format.)
            lines.append(
                f'{{"frame":{seg.frame},"ts":{seconds6(seg.ts)},"conn":{a.conn},'
                f'"client":"{a.client}","server":"{a.server}",'
                f'"direction":"{"c>s" if a.from_client else "s>c"}","flags":"'
                f'{letters[seg.flags]}","seq":{seg.seq},"ack":{seg.ack},'
                f'"rel_seq":{a.rel_seq},"rel_ack":{a.rel_ack},"len":{seg.payload},'
                f'"win":{seg.window},{tail}"win_scaled":{a.win_scaled},"options":'
                f'{options_json(raw, seg.ack, a.rel_ack) if raw else "{}"}'
                f'{CAUSE + _dumps(a.cause) if a.cause else ""}'
                '}\n')
        self._write("".join(lines))

    def write_calls(self, calls: list[Call]) -> None:
        """One object per call: its record (``kind`` first) and its text, strace's way."""
        lines = []
        for c in calls:
            d = c.as_dict()
            d["text"] = c.text()
            lines.append(_dumps(d) + "\n")
        self._write("".join(lines))

    def write_datagrams(self, datagrams: list[Datagram]) -> None:
        """One object per datagram (``"kind": "datagram"``), its time as the segments'."""
        lines = []
        for d in datagrams:
            rest = {k: v for k, v in d.as_dict().items() if k not in ("kind", "frame", "ts")}
            lines.append(f'{{"kind":"datagram","frame":{d.frame},"ts":{seconds6(d.ts)},'
                         f'{_dumps(rest, separators=(",", ":"))[1:]}\n')
        self._write("".join(lines))

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        """Nothing buffered beyond the stream itself."""
