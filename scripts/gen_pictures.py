#!/usr/bin/env python3
"""Regenerate the README's pictures: for two bundled scenarios, the terminal ladder
(as text, between the README's ``<!-- pictures:start -->`` and ``<!-- pictures:end -->``)
and the SVG in docs/. Never drawn by hand; a test checks the README is up to date.

    .venv/bin/python scripts/gen_pictures.py
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHOWN = (("handshake", "three-way handshake, request and response, client closes first"),
         ("simultaneous-close", "simultaneous close, first attempt"))


def section() -> tuple[str, dict[Path, str]]:
    """The README section and the SVG files it refers to."""
    sys.path.insert(0, str(ROOT))
    from rawinspect.render.ladder import LadderRenderer
    from rawinspect.render.svg import picture
    from rawinspect.app.pipeline import Stats, read_segments
    from rawinspect.app.annotator import Annotator

    parts, files = [], {}
    for name, title in SHOWN:
        anns = [a for a in Annotator().feed_all(read_segments(
            str(ROOT / "captures" / f"{name}.pcap"), Stats())) if a.conn == 1]
        text = io.StringIO()
        ladder = LadderRenderer(text, color=False, ascii_only=False, width=80)
        ladder.write(anns)
        svg = Path("docs") / f"{name}.svg"
        files[ROOT / svg] = picture(anns)
        parts.append(f"**{name}**: {title} (`rawinspect replay captures/{name}.pcap "
                     f"--conn 1 -T ladder`)\n\n```text{text.getvalue().rstrip()}\n```\n\n"
                     f"![{name} as SVG]({svg})\n")
    return "<!-- pictures:start -->\n" + "\n".join(parts) + "<!-- pictures:end -->", files


def main() -> int:
    readme = ROOT / "README.md"
    text, files = section()
    body = readme.read_text()
    new = re.sub(r"<!-- pictures:start -->.*<!-- pictures:end -->", lambda _m: text, body,
                 flags=re.S)
    if new == body and text not in body:
        print("README has no <!-- pictures:start --> ... <!-- pictures:end --> markers",
              file=sys.stderr)
        return 1
    readme.write_text(new)
    for path, svg in files.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(svg)
    print(f"README pictures and {len(files)} SVG files regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
