"""The HTML report (--format html), checked in Debian's chromium, headless.

Each page is loaded through the DevTools protocol (over --remote-debugging-pipe, with a
client written here on the standard library) and checked from the live DOM after its
script ran: one arrow per segment, the states in order, crossing segments crossing, a
click showing the segment's bytes, no network request, a screenshot that is not blank.
Under CI, a missing chromium fails these tests instead of skipping them.
"""

from __future__ import annotations

import base64
import fcntl
import importlib.util
import json
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import ROOT, cannot_run
from frames import eth, ipv4, pcap, tcp
from rawinspect.app import cli
from rawinspect.app.annotator import Annotator
from rawinspect.app.pipeline import Stats, read_segments
from rawinspect.core.call import Call
from rawinspect.render.html import HtmlRenderer, ReportInfo, script_json
from rawinspect.render.layout import crossings
from rawinspect.views.steps import EndpointSteps

CAPTURES = ROOT / "captures"
SCENARIOS = sorted(p.stem for p in CAPTURES.glob("*.pcap"))
PUBLIC_CAPTURE = CAPTURES / "public" / "zeek-http-get.pcap"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--remote-debugging-pipe")
HOSTILE = b'<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'


def _high(fd: int) -> int:
    """The same pipe end on a descriptor above 9, so that 3 and 4 can be set in the child."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class Browser:
    """Chromium, headless, driven over the DevTools pipe: fd 3 in, fd 4 out, NUL-separated
    JSON messages."""

    def __init__(self, exe: str, timeout: float = 60.0) -> None:
        self.profile = tempfile.mkdtemp(prefix="rawinspect-chromium-")
        child_in, self.out = (_high(fd) for fd in os.pipe())
        self.inp, child_out = (_high(fd) for fd in os.pipe())

        def wire() -> None:
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)
        self.proc = subprocess.Popen([exe, *FLAGS, f"--user-data-dir={self.profile}",
                                      "about:blank"], pass_fds=(3, 4), preexec_fn=wire,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(child_in)
        os.close(child_out)
        self.timeout = timeout
        self.last_id = 0
        self.buf = b""
        self.events: list[dict[str, Any]] = []

    def _message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            if select.select([self.inp], [], [], left)[0]:
                chunk = os.read(self.inp, 1 << 20)
                if not chunk:
                    raise EOFError("chromium closed its DevTools pipe")
                self.buf += chunk
        msg, _, self.buf = self.buf.partition(b"\0")
        return json.loads(msg)

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self.last_id += 1
        msg: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.out, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self.last_id:
                assert "error" not in reply, f"{method}: {reply['error']}"
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, session: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method and e.get("sessionId") == session
                      for e in self.events):
            self.events.append(self._message(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.proc.wait(15)
        except (OSError, EOFError, TimeoutError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        os.close(self.out)
        os.close(self.inp)
        shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    """One tab showing one report."""

    def __init__(self, browser: Browser, path: Path, fragment: str = "") -> None:
        self.b = browser
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.sid = browser.send("Target.attachToTarget", {"targetId": target,
                                                          "flatten": True})["sessionId"]
        for domain in ("Page", "Network", "Runtime", "Log"):
            browser.send(f"{domain}.enable", session=self.sid)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": 1400, "height": 1000,
                     "deviceScaleFactor": 1, "mobile": False}, session=self.sid)
        self.url = path.as_uri()
        started = time.monotonic()
        browser.send("Page.navigate", {"url": self.url + fragment}, session=self.sid)
        browser.wait_for("Page.loadEventFired", self.sid, 60)
        self.load_seconds = time.monotonic() - started

    def js(self, expression: str) -> Any:
        res = self.b.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                               "awaitPromise": True}, session=self.sid)
        assert "exceptionDetails" not in res, res
        return res["result"].get("value")

    def key(self, key: str) -> None:
        self.js(f"document.dispatchEvent(new KeyboardEvent('keydown', {{key: {key!r}}}))")

    def events(self, method: str) -> list[dict[str, Any]]:
        return [e["params"] for e in self.b.events
                if e.get("method") == method and e.get("sessionId") == self.sid]

    def requests(self) -> list[str]:
        """Every URL the page asked for, the report itself included."""
        return [p["request"]["url"] for p in self.events("Network.requestWillBeSent")]

    def screenshot(self) -> bytes:
        data = self.b.send("Page.captureScreenshot", {"format": "png"}, session=self.sid)
        return base64.b64decode(data["data"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    exe = shutil.which("chromium")
    if exe is None:
        cannot_run("chromium not found (scripts/setup.sh installs Debian's chromium as root)")
    b = Browser(exe)
    yield b
    b.close()


def annotations(path: Path) -> tuple[list, Stats]:
    stats = Stats()
    return Annotator().feed_all(read_segments(str(path), stats)), stats


def report(path: Path, out: Path, calls: list[Call] | None = None,
           info: ReportInfo | None = None) -> tuple[Path, list]:
    """The report of a capture file, its bytes read back from it."""
    anns, stats = annotations(path)
    r = HtmlRenderer(str(out), info or ReportInfo(what=f"replay {path.name}",
                                                  capture=str(path), packets=stats.packets))
    r.write(anns)
    if calls:
        r.write_calls(calls)
    r.close()
    return out, anns


def _png_pixels_vary(png: bytes) -> bool:
    """Whether a PNG's decompressed scanlines hold many colours' bytes."""
    pos, idat = 8, b""
    while pos < len(png):
        length, kind = struct.unpack_from(">I4s", png, pos)
        if kind == b"IDAT":
            idat += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw = zlib.decompress(idat)
    return len(set(raw[::97])) > 16  # a blank page has one colour (and filter bytes)


def _cross(a: dict[str, float], b: dict[str, float]) -> bool:
    """Two arrows between the same two lifelines cross when their order swaps."""
    def at(line: dict[str, float], x: float) -> float:
        return line["y1"] if line["x1"] == x else line["y2"]
    left, right = min(a["x1"], a["x2"]), max(a["x1"], a["x2"])
    return (at(a, left) - at(b, left)) * (at(a, right) - at(b, right)) < 0


DOM_CONN = """(() => {
  const segs = [...document.querySelectorAll('#ladder g.seg')];
  const lines = {};
  for (const g of segs) {
    const l = g.querySelector('line.arrow');
    lines[g.dataset.frame] = Object.fromEntries(['x1', 'y1', 'x2', 'y2'].map(k => [k, +l.getAttribute(k)]));
  }
  const states = side => [...document.querySelectorAll(`#ladder text.state[data-side=${side}]`)]
    .sort((a, b) => a.dataset.y - b.dataset.y).map(t => t.textContent);
  return {title: document.querySelector('#ladder h2').textContent,
          frames: segs.map(g => +g.dataset.frame), lines, client: states('client'),
          server: states('server')};
})()"""


def expected_changes(anns: list, who: str) -> list[str]:
    steps = EndpointSteps(anns[0])
    changes = [c for a in anns for c in steps.feed(a)]
    return [" → ".join(c.path[1:]) for c in changes if c.who == who]


def check_connections(page: Page, anns: list) -> None:
    """Walk every connection with "]": arrows, states in order, crossings."""
    conns = sorted({a.conn for a in anns})
    for n, conn in enumerate(conns):
        if n:
            page.key("]")
        dom = page.js(DOM_CONN)
        mine = [a for a in anns if a.conn == conn]
        assert dom["title"].startswith(f"connection {conn}:")
        assert dom["frames"] == [a.seg.frame for a in mine], "one arrow per segment"
        assert dom["client"] == expected_changes(mine, "client")
        assert dom["server"] == expected_changes(mine, "server")
        for a, crossed in zip(mine, crossings(mine)):
            for frame in crossed:
                assert _cross(dom["lines"][str(a.seg.frame)], dom["lines"][str(frame)])


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_report_in_the_browser(name, browser, tmp_path):
    path, anns = report(CAPTURES / f"{name}.pcap", tmp_path / f"{name}.html")
    page = Page(browser, path)
    assert page.js("document.documentElement.dataset.ready") == "1"
    check_connections(page, anns)
    assert page.requests() == [page.url]
    assert page.js("performance.getEntriesByType('resource').length") == 0
    assert not page.events("Runtime.exceptionThrown")


def test_crossing_segments_cross(browser, tmp_path):
    for name in ("simultaneous-close", "simultaneous-open"):
        path, anns = report(CAPTURES / f"{name}.pcap", tmp_path / f"{name}.html")
        page = Page(browser, path)
        dom = page.js(DOM_CONN)
        pairs = [(a.seg.frame, f) for a, c in zip(anns, crossings(anns)) for f in c
                 if a.conn == 1]
        assert pairs, f"{name}: the lesson's segments cross"
        for a, b in pairs:
            assert _cross(dom["lines"][str(a)], dom["lines"][str(b)])
        assert "✕ crossed" in page.js("document.querySelector('#ladder').textContent")


def test_a_click_shows_the_segments_bytes(browser, tmp_path):
    path, anns = report(PUBLIC_CAPTURE, tmp_path / "public.html")
    check_connections(Page(browser, path), anns)
    page = Page(browser, path, "#conn=1")
    data = next(a for a in anns if a.conn == 1 and a.seg.payload)
    page.js(f"document.querySelector('#ladder g.seg[data-frame=\"{data.seg.frame}\"] text')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    detail = page.js("document.querySelector('#detail').textContent")
    assert f"frame {data.seg.frame}" in detail
    ports = struct.pack("!HH", data.seg.sport, data.seg.dport).hex()
    assert f"{ports[:2]} {ports[2:4]}" in detail and str(data.seg.sport) in detail
    seq = struct.pack("!I", data.seg.seq).hex()
    assert " ".join(seq[i:i + 2] for i in range(0, 8, 2)) in detail
    assert str(data.seg.seq) in detail and "ntohl" in detail
    dump = page.js("document.querySelector('#payload-dump').textContent")
    assert dump.startswith("0x0000:  ") and "GET" in dump
    assert "timestamps" in detail or "NOP" in detail or not data.seg.raw_opts
    assert page.requests() == [page.url]
    assert _png_pixels_vary(page.screenshot()), "the screenshot is not blank"


def test_keys_move_between_segments_and_state_changes(browser, tmp_path):
    path, anns = report(CAPTURES / "handshake.pcap", tmp_path / "h.html")
    page = Page(browser, path)
    selected = "document.querySelector('#ladder g.seg.sel').dataset.frame"
    page.key("j")
    page.key("j")
    assert page.js(selected) == "2"
    page.key("n")
    conn1 = [a for a in anns if a.conn == 1]
    changes = [a.seg.frame for a in conn1
               if a.seg.frame > 2 and (expected_changes([conn1[0], a], "client")
                                       or a.client_path and len(set(a.client_path)) > 1
                                       or a.server_path and len(set(a.server_path)) > 1)]
    assert page.js(selected) == str(changes[0])
    page.js("document.querySelector('#theme').click()")
    theme = page.js("document.documentElement.dataset.theme")
    assert theme in ("dark", "light")


def test_a_hostile_capture_shows_as_text_and_runs_nothing(browser, tmp_path):
    c, s = ("10.0.0.1", "10.0.0.2")
    frames = [tcp(40000, 80, 100, 0, 0x02), tcp(80, 40000, 500, 101, 0x12),
              tcp(40000, 80, 101, 501, 0x10),
              tcp(40000, 80, 101, 501, 0x18, payload=HOSTILE)]
    recs = [(1.0 + i / 100, eth(ipv4(f, *(c, s) if i % 2 == 0 or i == 3 else (s, c))))
            for i, f in enumerate(frames)]
    cap = tmp_path / "hostile.pcap"
    cap.write_bytes(pcap(recs))
    evil = '<img src=x onerror="window.__pwned=3">'
    call = Call(ts=1.05, pid=7, comm=evil, name="write", fd=3, ret=len(HOSTILE), conn=1,
                side="client")
    info = ReportInfo(what=f"capture {evil}", capture=str(cap), interface=evil,
                      filter="</script><script>window.__pwned=4</script>",
                      verdict=["<script>window.__pwned=5</script>"], ok=False)
    path, _ = report(cap, tmp_path / "hostile.html", [call], info)
    html = path.read_text()
    assert "<img" not in html and html.count("<script") == 2
    page = Page(browser, path)
    page.js("document.querySelector('#ladder g.seg[data-frame=\"4\"] text')"
            ".dispatchEvent(new MouseEvent('click', {bubbles: true}))")
    assert page.js("typeof window.__pwned") == "undefined"
    assert page.js("document.querySelectorAll('img').length") == 0
    assert page.js("document.scripts.length") == 2
    assert "<script>window._" in page.js("document.querySelector('#payload-dump').textContent")
    body = page.js("document.body.textContent")
    assert evil in body and "</script><script>window.__pwned=4</script>" in body
    assert page.requests() == [page.url]


def test_the_policy_forbids_the_network_and_foreign_scripts(tmp_path):
    path, _ = report(CAPTURES / "handshake.pcap", tmp_path / "h.html")
    html = path.read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html)
    assert csp
    policy = dict(p.strip().split(" ", 1) for p in csp.group(1).split(";"))
    assert policy["default-src"] == "'none'" and policy["script-src"].startswith("'sha256-")
    assert "unsafe" not in csp.group(1) and "http" not in csp.group(1)
    assert "src=" not in html and "href=" not in html  # nothing loaded from anywhere
    assert script_json({"p": "</script><!--&"}) == '{"p":"\\u003c/script\\u003e\\u003c!--\\u0026"}'


def mix(n: int) -> bytes:
    """``n`` packets of ten-packet connections, 50 open at a time: handshake, a request
    and a response of 100 to 1,000 bytes with timestamps, then a close."""
    records, conns = [], []
    opened = 0
    while len(records) < n:
        while len(conns) < 50:
            opened += 1
            c, port = f"10.1.{opened >> 8 & 255}.{opened & 255 or 1}", 1024 + opened % 60000
            req, resp = b"G" * (100 + opened % 400), b"R" * (200 + opened * 7 % 800)
            ts = b"\x01\x01\x08\x0a" + struct.pack("!II", opened, opened)
            steps = [(1, 0, 0, 0x02, b""), (0, 0, 1, 0x12, b""), (1, 1, 1, 0x10, b""),
                     (1, 1, 1, 0x18, req), (0, 1, 1 + len(req), 0x10, b""),
                     (0, 1, 1 + len(req), 0x18, resp),
                     (1, 1 + len(req), 1 + len(resp), 0x11, b""),
                     (0, 1 + len(resp), 2 + len(req), 0x11, b""),
                     (1, 2 + len(req), 2 + len(resp), 0x10, b"")]
            conns.append([c, port, steps])
        i = len(records) * 7919 % len(conns)
        c, port, steps = conns[i]
        out, seq, ack, flags, data = steps.pop(0)
        seg = (tcp(port, 80, 1000 + seq, 5000 + ack if flags & 0x10 else 0, flags,
                   payload=data, options=ts) if out else
               tcp(80, port, 5000 + seq, 1000 + ack, flags, payload=data, options=ts))
        records.append((1_700_000_000 + len(records) / 1000,
                        eth(ipv4(seg, c, "10.2.0.1") if out else ipv4(seg, "10.2.0.1", c))))
        if not steps:
            conns.pop(i)
    head = pcap([])  # the file header; records appended in one go (pcap() adds them one by one)
    return head + b"".join(struct.pack("<IIII", int(t), round(t % 1 * 1e6), len(d), len(d)) + d
                           for t, d in records)


def test_large_capture_opens_and_scrolls_within_2_s(browser, tmp_path):
    sizes = {}
    for n in (10_000, 100_000):
        cap = tmp_path / f"mix{n}.pcap"
        cap.write_bytes(mix(n))
        path, anns = report(cap, tmp_path / f"mix{n}.html")
        sizes[n] = path.stat().st_size
    assert sizes[100_000] < 11 * sizes[10_000], "the file grows linearly"
    page = Page(browser, path)
    assert page.js("document.documentElement.dataset.ready") == "1"
    scrolled = page.js("""new Promise(done => {
      const t0 = performance.now();
      const list = document.querySelector('#conn-list');
      list.scrollTop = list.scrollHeight / 2;
      requestAnimationFrame(() => requestAnimationFrame(() => {
        const row = document.querySelector('#conn-list .row:not(.head)');
        done([performance.now() - t0, row ? row.dataset.conn : null]);
      }));
    })""")
    print(f"\n100,000 packets: report {sizes[100_000] / 1e6:.1f} MB "
          f"(10,000: {sizes[10_000] / 1e6:.1f} MB), loaded in {page.load_seconds:.2f} s, "
          f"list scrolled in {scrolled[0]:.0f} ms", file=sys.stderr)
    assert page.load_seconds < 2.0 and scrolled[0] < 2000 and int(scrolled[1]) > 100
    assert page.requests() == [page.url]


def test_readme_screenshot_shows_the_current_report(monkeypatch):
    spec = importlib.util.spec_from_file_location("gen_report_screenshot",
                                                  ROOT / "scripts" / "gen_report_screenshot.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    png = (ROOT / "docs" / "report.png").read_bytes()
    shown = gen.png_text(png).get(gen.KEY, b"").decode()
    assert shown == gen.digest(gen.report_html()), \
        "docs/report.png is out of date: run scripts/gen_report_screenshot.py"


def test_replay_format_html_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-o", str(out), "-q"]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert cli.main(["replay", str(CAPTURES / "handshake.pcap"), "-T", "html", "-q"]) == 2
    assert "--format html needs -o FILE.html" in capsys.readouterr().err


def test_capture_scenario_writes_its_report_beside_its_pcap(tmp_path):
    from rawinspect.app.capture_cmd import plan_capture
    args = cli.build_parser().parse_args(["capture", "handshake", "-T", "html", "-w",
                                          str(tmp_path / "h.pcap")])
    args.command_argv = []
    plan_capture(args)
    assert args.output == str(tmp_path / "handshake.html")


def test_udp_datagrams_are_listed_in_the_browser(browser, tmp_path):
    """The datagrams scenario's report: its three datagrams in the header, in frame order,
    with the counts, and no state anywhere for them."""
    out = tmp_path / "datagrams.html"
    assert cli.main(["replay", str(CAPTURES / "datagrams.pcap"), "-o", str(out), "-q"]) == 0
    page = Page(browser, out)
    assert page.js("document.documentElement.dataset.ready") == "1"
    items = page.js("[...document.querySelectorAll('.udp-list li')].map(li => li.textContent)")
    assert [i.split()[0] for i in items] == ["1", "2", "3"]
    for item, message in zip(items, ("one", "two two", "three three three")):
        assert item.endswith(f'length {len(message)} "{message}"'), item
    assert "3 UDP datagrams" in page.js("document.body.textContent")
    assert "no states" in page.js("document.querySelector('.udp').textContent")
    assert not page.events("Runtime.exceptionThrown")
