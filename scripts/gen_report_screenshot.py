#!/usr/bin/env python3
"""Regenerate docs/report.png, the README's picture of an HTML report, with Debian's
chromium in headless mode: the simultaneous-close scenario's report, connection 1, the
crossing FIN (frame 5) clicked. Never drawn by hand.

The PNG carries the SHA-256 of the report it shows in a tEXt chunk
(``rawinspect-report``): tests/test_html_report.py rebuilds the report and fails when
the picture no longer shows the current one (run this script again).

    .venv/bin/python scripts/gen_report_screenshot.py
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURE = "captures/simultaneous-close.pcap"  # relative: the report names it
SHOWN = "#conn=1&frame=5"
PNG = ROOT / "docs" / "report.png"
KEY = b"rawinspect-report"
SIZE = (1400, 1050)
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--force-color-profile=srgb")


def report_html() -> str:
    """The report the picture shows, built from the checkout's sources (run in ROOT)."""
    sys.path.insert(0, str(ROOT))
    from rawinspect.app.annotator import Annotator
    from rawinspect.app.pipeline import Stats, read_segments
    from rawinspect.render.html import HtmlRenderer, ReportInfo, document

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        stats = Stats()
        anns = Annotator().feed_all(read_segments(CAPTURE, stats))
        r = HtmlRenderer("report.html", ReportInfo(what=f"replay {CAPTURE}", capture=CAPTURE,
                                                   packets=stats.packets))
        r.write(anns)
        return document(r.data(), r.info.what)
    finally:
        os.chdir(cwd)


def digest(html: str) -> str:
    return hashlib.sha256(html.encode()).hexdigest()


def png_text(data: bytes) -> dict[bytes, bytes]:
    """The tEXt chunks of a PNG."""
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            out[key] = value
        pos += 12 + length
    return out


def with_text(png: bytes, key: bytes, value: bytes) -> bytes:
    """The PNG with a tEXt chunk added after its header chunk."""
    body = b"tEXt" + key + b"\0" + value
    chunk = struct.pack(">I", len(body) - 4) + body + struct.pack(">I", zlib.crc32(body))
    end_of_ihdr = 8 + 12 + struct.unpack_from(">I", png, 8)[0]
    return png[:end_of_ihdr] + chunk + png[end_of_ihdr:]


def screenshot(html: str, chromium: str) -> bytes:
    """The page as chromium draws it, SIZE pixels."""
    with tempfile.TemporaryDirectory(prefix="rawinspect-shot-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        shot = Path(tmp) / "shot.png"
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile",
                        f"--window-size={SIZE[0]},{SIZE[1]}", f"--screenshot={shot}",
                        page.as_uri() + SHOWN], check=True, timeout=120,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return shot.read_bytes()


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found: install Debian's chromium (scripts/test.sh does, as root)",
              file=sys.stderr)
        return 1
    html = report_html()
    png = with_text(screenshot(html, chromium), KEY, digest(html).encode())
    PNG.parent.mkdir(exist_ok=True)
    PNG.write_bytes(png)
    print(f"wrote {PNG.relative_to(ROOT)} ({len(png)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
