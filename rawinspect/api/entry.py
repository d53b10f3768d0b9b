"""The Python API: ``read`` a capture file, ``annotate`` packets, capture ``live``.

Each gives a ``Capture`` (``rawinspect.api.results``), made by the very stages the command line
runs (``app/pipeline``: decoder, tracker and Wireshark's analysis; ``app/timeline``: the
programs' calls merged in time order; ``app/capture_loop`` and ``app/recording`` live), so
``rawinspect.read(path).jsonl()`` is ``rawinspect replay path -T jsonl``, byte for byte.
``printer`` prints each segment of scapy's ``sniff()`` as soon as it is annotated.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterable, Iterator, Sequence, TextIO, cast

from ..app.annotator import Annotator
from ..app.capture_loop import DEFAULT_LINGER, Limits, StopFlag, capture_loop
from ..app.collector import collector_paused
from ..app.output import Output
from ..app.pipeline import Datagrams, Stats, decode_records, make_tracker, run
from ..app.timeline import replay_with_calls
from ..core.annotation import Annotation
from ..core.call import Call
from ..core.datagram import Datagram
from ..core.tracker import DEFAULT_HOLD, DEFAULT_MSL
from ..render import RenderOptions, make_renderer
from .results import Capture, Event
from .saving import Packets
from .scapy_io import RawPacket, loopback_copy, raw_packets, to_raw
from ..sources.calls_file import read_saved
from ..sources.capfile import CaptureFileError, Record, open_capture
from ..sources.decode import Decoder

__all__ = ["CaptureError", "CapturePermissionError", "annotate", "live", "printer", "read"]


class CaptureError(Exception):
    """A live capture cannot start: the interface, the filter, the command."""


class CapturePermissionError(CaptureError, PermissionError):
    """Live capture needs root or CAP_NET_RAW; the message says how to get it."""


class _Collector:
    """The sink of the pipeline: every final annotation and call, in time order."""

    def __init__(self, stats: Stats) -> None:
        self.events: list[Event] = []
        self.stats = stats

    def sink(self, anns: list[Annotation]) -> bool:
        self.events.extend(anns)
        self.stats.shown += len(anns)
        return True

    def sink_calls(self, calls: list[Call]) -> None:
        self.events.extend(calls)

    def sink_datagrams(self, datagrams: list[Datagram]) -> None:
        self.events.extend(datagrams)


def _annotate(records: Iterator[Record], calls: list[Call], out: _Collector, msl: float,
              hold: float) -> None:
    """Packets (and saved calls) through the replay pipeline, into ``out``."""
    tracker = make_tracker(msl, hold)
    udp = Datagrams(out.sink_datagrams)
    segments = decode_records(records, out.stats, udp.add)
    with collector_paused():
        if calls:
            # Only the .sink methods of the output are used: the collector has them.
            replay_with_calls(segments, tracker, cast(Output, out), out.stats, calls, udp)
        else:
            run(segments, tracker, out.sink, out.stats, udp)


def read(path: str | os.PathLike[str], *, calls: bool = True, partial: bool = False,
         msl: float = DEFAULT_MSL, hold: float = DEFAULT_HOLD) -> Capture:
    """Annotate a pcap or pcapng file, as ``rawinspect replay`` does.

    The programs' calls saved with it are merged in unless ``calls`` is False. A file that
    cannot be read raises ``rawinspect.sources.capfile.CaptureFileError`` naming it and
    the damaged record; with ``partial``, a file damaged part way gives what was read
    before the damage instead, and the error in ``Capture.error``.
    """
    path = os.fspath(path)
    out = _Collector(Stats())
    records = open_capture(path)
    saved, sockets = read_saved(path) if calls else ([], [])
    error = ""
    try:
        _annotate(records, saved, out, msl, hold)
    except CaptureFileError as e:
        if not partial:
            raise
        error = str(e)
    capture = Capture(out.events, out.stats, msl=msl, packets=Packets(path=path),
                      left_behind=sockets)
    capture.error = error
    return capture


def _records(packets: Iterable[RawPacket]) -> Iterator[Record]:
    for linktype, ts, data, wirelen in packets:
        yield linktype, ts, data, 0, len(data), wirelen


def annotate(packets: Iterable[Any], *, msl: float = DEFAULT_MSL,
             hold: float = DEFAULT_HOLD) -> Capture:
    """Annotate packets: scapy's (``sniff()``, ``rdpcap()``, a ``PacketList``, built with
    its layers: Ethernet, loopback, raw IP, Linux cooked) or ``(timestamp, bytes,
    linktype)`` tuples. Loopback's second copy of each packet (scapy's sniffer keeps both)
    is left out. Anything else raises ``rawinspect.api.scapy_io.PacketError`` (a ValueError).
    """
    kept = list(raw_packets(packets))
    out = _Collector(Stats())
    _annotate(_records(kept), [], out, msl, hold)
    return Capture(out.events, out.stats, msl=msl, packets=Packets(memory=kept))


class Printer:
    """A ``prn=`` for scapy's ``sniff()``: prints each segment once it is annotated.

    A SYN or FIN waits for the peer's answer (at most ``hold`` seconds by the packets'
    clock), as in live capture; ``close()`` prints what is still waiting and returns the
    Capture.
    """

    def __init__(self, format: str = "table", out: TextIO | None = None, *,
                 msl: float = DEFAULT_MSL, hold: float = DEFAULT_HOLD,
                 options: RenderOptions | None = None) -> None:
        self.out = out or sys.stdout
        self.renderer = make_renderer(format, self.out, options or RenderOptions())
        self.tracker: Annotator = make_tracker(msl, hold)
        self.decoder = Decoder()
        self.stats = Stats()
        self.msl = msl
        self.kept: list[RawPacket] = []
        self.events: list[Event] = []
        self._last: RawPacket | None = None
        self.udp = Datagrams(self._show_datagrams)

    def __call__(self, packet: Any) -> None:
        """Take one packet from ``sniff()``; print what became final."""
        raw, loopback = to_raw(packet, self.stats.packets + 1)
        if loopback_copy(self._last, raw, loopback):
            self._last = None
        else:
            self._last = raw
            self._show(self._take(raw) + self.tracker.flush(raw[1]))

    def _take(self, raw: RawPacket) -> list[Annotation]:
        """Decode and count one packet; the annotations it made final."""
        self.kept.append(raw)
        self.stats.packets += 1
        linktype, ts, data, wirelen = raw
        seg = self.decoder.decode(self.stats.packets, linktype, ts, data, 0, len(data),
                                  wirelen)
        if isinstance(seg, str):
            self.stats.skipped[seg] += 1
        elif isinstance(seg, Datagram):
            self.stats.datagrams += 1
            self.udp.add(seg)
        else:
            self.stats.segments += 1
            return self.tracker.feed(seg)
        return []

    def _show(self, anns: list[Annotation]) -> None:
        """The annotations now final, and the datagrams between and after them."""
        self.udp.hand_on(anns, self._show_annotations, self.tracker.held_frame())

    def _show_annotations(self, anns: list[Annotation]) -> bool:
        if anns:
            self.events.extend(anns)
            self.renderer.write(anns)
            self.renderer.flush()
        return True

    def _show_datagrams(self, datagrams: list[Datagram]) -> None:
        self.events.extend(datagrams)
        self.renderer.write_datagrams(datagrams)
        self.renderer.flush()

    def close(self) -> Capture:
        """Print the segments still waiting for an answer; the whole Capture."""
        self._show(self.tracker.finish())
        self.renderer.close()
        self.stats.connections = self.tracker.connections
        return Capture(self.events, self.stats, msl=self.msl, packets=Packets(memory=self.kept))


def printer(format: str = "table", out: TextIO | None = None, **kw: Any) -> Printer:
    """A ``prn=`` for scapy's ``sniff()`` that prints each annotated segment as it comes:
    ``p = rawinspect.printer(); sniff(iface="lo", filter="tcp", prn=p, count=20);
    p.close()``. ``format``: table, jsonl or ladder."""
    return Printer(format, out, **kw)


class _BlockEnd:
    """What the capture loop watches end: the ``with`` block (and the command, if any)."""

    def __init__(self, command: subprocess.Popen[bytes] | None) -> None:
        self.pid = command.pid if command is not None else os.getpid()
        self.command = command
        self.ended = threading.Event()

    def poll(self) -> int | None:
        if not self.ended.is_set():
            return None
        return 0 if self.command is None else self.command.poll()

    def wait(self) -> int:
        return 0 if self.command is None else self.command.wait()


def _open_sniffer(interface: str, expression: str) -> Any:
    from ..sources.sniffer import DEFAULT_BUFFER, DEFAULT_SNAPLEN, NoPrivilegeError, Sniffer
    from ..sources.sniffer import SnifferError
    try:
        return Sniffer(interface, expression, DEFAULT_SNAPLEN, DEFAULT_BUFFER)
    except NoPrivilegeError as e:
        raise CapturePermissionError(str(e)) from None
    except SnifferError as e:
        raise CaptureError(str(e)) from None


@contextmanager
def live(interface: str = "lo", filter: str | None = None, ports: Sequence[int] = (),
         command: Sequence[str] | None = None, *, linger: float = DEFAULT_LINGER,
         timeout: float = 30.0, all_traffic: bool = False, msl: float = DEFAULT_MSL,
         hold: float = DEFAULT_HOLD) -> Iterator[Capture]:
    """Capture while the ``with`` block runs, then for ``linger`` seconds; yields the Capture.

    ``filter`` is a BPF expression (default: TCP on ``ports``, or all TCP); ``command``,
    if given, is started at once and its socket calls recorded (as root: the kernel's
    tracepoints), and only its own connections are kept unless ``all_traffic``, as
    ``rawinspect capture -- COMMAND`` does; at the block's end the capture waits up to ``timeout`` seconds for it to
    end, then stops it. Reading the Capture's results inside the block stops the capture
    there. Without root or CAP_NET_RAW this raises CapturePermissionError, whose message
    says how to get them.
    """
    from ..scenarios.runner import capture_filter
    expression = filter or (capture_filter(list(ports)) if ports else "tcp")
    session = _LiveSession(_open_sniffer(interface, expression), linger, timeout, msl, hold)
    try:
        session.start(list(command) if command else None, all_traffic)
        yield session.capture
    finally:
        session.stop()


class _LiveSession:
    """One live capture in a thread of its own: the shared capture loop and recording."""

    def __init__(self, source: Any, linger: float, timeout: float, msl: float,
                 hold: float) -> None:
        from ..render.pcapwriter import PcapWriter
        self.source = source
        self.linger, self.timeout, self.msl = linger, timeout, msl
        self.tmp = tempfile.TemporaryDirectory(prefix="rawinspect-live-")
        self.path = os.path.join(self.tmp.name, "live.pcapng")
        self.writer = PcapWriter(self.path, source.linktype, source.snaplen)
        self.tracker = make_tracker(msl, hold)
        self.stats = Stats(dropped=0)
        self.out = _Collector(self.stats)
        self.stop_flag = StopFlag()
        self.recording: Any = None
        self.trace: Any = None
        self.block: _BlockEnd | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.capture = Capture(msl=msl, pending=self.stop)

    def start(self, command: list[str] | None, all_traffic: bool) -> None:
        """Start the command (held at its gate until traced) and the capture thread."""
        proc = self._start_command(command, not all_traffic) if command else None
        self.block = _BlockEnd(proc)
        self.thread = threading.Thread(target=self._loop, name="rawinspect-live", daemon=True)
        self.thread.start()

    def _start_command(self, command: list[str], own_only: bool) -> subprocess.Popen[bytes]:
        from ..app.capture_cmd import start_command
        from ..app.gate import Gate
        from ..app.recording import Recording, start_recording
        self.trace = start_recording()
        gate = Gate() if self.trace is not None else None
        try:
            proc = start_command(command, True, gate.wrap if gate is not None else None,
                                 gate.pass_fds if gate is not None else ())
        except OSError as e:
            if gate is not None:
                gate.close()
            raise CaptureError(f"cannot run {command[0]!r}: {e.strerror or e}") from None
        if gate is not None and self.trace is not None:
            self.recording = Recording(self.trace, cast(Output, self.out), self.writer,
                                       self.tracker, self.stats, own_only, time.time)
            gate.open(proc.pid, self.trace.follow)
        return proc

    def _loop(self) -> None:
        rec = self.recording
        try:
            udp = Datagrams(rec.timeline.add_datagrams if rec is not None
                            else self.out.sink_datagrams)
            capture_loop(self.source, self.writer, self.tracker,
                         rec.sink if rec is not None else self.out.sink, self.stats,
                         Limits(linger=self.linger), self.stop_flag, self.block,
                         rec.each_round if rec is not None else None, time.time, udp)
            if rec is not None:
                rec.finish()
        except BaseException as e:  # handed to the thread that reads the results
            self.error = e

    def stop(self) -> None:
        """End of the block: wait for the command and the linger, then the results."""
        if self.capture._pending is None:
            return
        self.capture._pending = None
        block, thread = self.block, self.thread
        if block is not None and thread is not None:
            block.ended.set()
            if block.command is not None:
                try:
                    block.command.wait(self.timeout)
                except subprocess.TimeoutExpired:
                    block.command.terminate()
                    block.command.wait()
            thread.join(self.linger + 10)
            if thread.is_alive():
                self.stop_flag.signum = 15  # the loop's way out on a signal
                thread.join()
        self._close()

    def _close(self) -> None:
        end = time.time()
        for close in (self.source.close, self.writer.close):
            close()
        if self.trace is not None:
            self.trace.close()
        if self.error is not None:
            raise self.error
        self.capture._done(self.out.events, self.stats, end, Packets(path=self.path), [])
        self.capture._tmp = self.tmp  # the file lives as long as the Capture
