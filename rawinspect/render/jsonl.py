"""JSON lines: one object per TCP segment, keys documented in the README."""

from __future__ import annotations

import json
from typing import TextIO

from ..annotation import Annotation

_dumps = json.dumps


class JsonlRenderer:
    """Writes one JSON object per annotation; formats by hand on the hot path."""

    def __init__(self, out: TextIO) -> None:
        self._write = out.write
        self._cache: dict[str, str] = {}

    def _json(self, text: str) -> str:
        s = self._cache.get(text)
        if s is None:
            if len(self._cache) > 4096:
                self._cache.clear()
            s = self._cache[text] = _dumps(text)
        return s

    def write(self, anns: list[Annotation]) -> None:
        j = self._json
        lines = []
        for a in anns:
            seg = a.seg
            cp, sp = a.client_path, a.server_path
            lines.append(
                f'{{"frame":{seg.frame},"ts":{seg.ts:.6f},"conn":{a.conn},'
                f'"client":{j(a.client)},"server":{j(a.server)},'
                f'"direction":"{"c>s" if a.from_client else "s>c"}","flags":"{seg.letters}",'
                f'"seq":{seg.seq},"ack":{seg.ack},"rel_seq":{a.rel_seq},"rel_ack":{a.rel_ack},'
                f'"len":{seg.payload},"win":{seg.window},'
                f'"client_before":"{a.client_before}","client_after":"{a.client_after}",'
                f'"server_before":"{a.server_before}","server_after":"{a.server_after}",'
                f'"client_path":{_dumps(cp) if cp else "null"},'
                f'"server_path":{_dumps(sp) if sp else "null"},'
                f'"event":"{a.event}","analysis":{_dumps(a.analysis) if a.analysis else "[]"},'
                f'"note":{j(a.note)}}}\n')
        self._write("".join(lines))

    def close(self) -> None:
        """Nothing buffered beyond the stream itself."""
