#!/usr/bin/env python3
"""Regenerate the README's state diagram from the transition table (never edit it by hand)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from rawinspect.render.states_doc import states_mermaid  # noqa: E402

README = ROOT / "README.md"
START, END = "<!-- states:start -->", "<!-- states:end -->"


def main() -> None:
    text = README.read_text()
    block = f"{START}\n```mermaid\n{states_mermaid()}\n```\n{END}"
    new, n = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if n != 1:
        raise SystemExit(f"{README}: markers {START} … {END} not found")
    README.write_text(new)


if __name__ == "__main__":
    main()
