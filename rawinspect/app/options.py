"""What every command shares: exit codes, the usage error, and the output options."""

from __future__ import annotations

import argparse
from typing import Callable

from ..core.tracker import DEFAULT_HOLD, DEFAULT_MSL
from ..render import DEFAULT_FORMAT, FORMATS, formats_help

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_NOPRIV = 0, 1, 2, 77
TIME_MODES = ("relative", "absolute", "delta", "conn-delta")  # the table's Time column


class UsageError(Exception):
    """A bad option value: reported in one line, exit 2."""


def check_annotate(args: argparse.Namespace) -> None:
    """--annotate and -w: the same rule for replay and capture (UsageError)."""
    if args.annotate and not (args.write or "").endswith(".pcapng"):
        raise UsageError("--annotate needs -w FILE.pcapng (packet comments exist only in "
                         "pcapng)")


def positive(convert: Callable[[str], float], what: str) -> Callable[[str], float]:
    """An argparse type: ``convert`` the text and insist on a value above zero."""
    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value
    return parse


positive_float = positive(float, "a number")
positive_int = positive(int, "a whole number")


def port(text: str) -> int:
    """An argparse type: a TCP port number."""
    value = int(positive_int(text))
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r}")
    return value


def add_output_options(p: argparse.ArgumentParser,
                       count_help: str = "stop after showing N segments") -> None:
    """Options shared by every command that prints annotations."""
    p.add_argument("--format", "-T", choices=tuple(FORMATS), default=None,
                   help=formats_help() + f" (default: {DEFAULT_FORMAT}, or svg for -o FILE.svg)")
    p.add_argument("--conns", action="store_true",
                   help="one summary per connection (Zeek's conn_state and history, "
                        "final states, who closed first, time in each state); as table, "
                        "jsonl or zeek")
    p.add_argument("--explain", type=positive_int, metavar="N",
                   help="for connection N: the segments behind each history letter and "
                        "state change, and the time in each state")
    files = ", ".join(f.name for f in FORMATS.values() if f.stream == "file")
    p.add_argument("--findings-only", action="store_true",
                   help="print only the findings (the socket mistakes each connection "
                        "shows, with evidence and fix), not the segments; as text, or "
                        "jsonl records with --format jsonl")
    p.add_argument("-o", "--output", metavar="FILE",
                   help=f"the output file of --format {files} (svg: FILE-connN.svg when "
                        "several connections are shown); -o FILE.svg alone means --format "
                        "svg; other formats print to stdout (redirect them)")
    p.add_argument("--ascii", action="store_true", help="ladder in plain ASCII (--format ladder)")
    p.add_argument("--annotate", action="store_true",
                   help="with -w: pcapng with each packet's annotation as its comment")
    p.add_argument("--width", type=positive_int, metavar="COLUMNS",
                   help="width of the table or ladder (default: the terminal's, or 80)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="table: each row also gives the window as the receiver reads it "
                        "(scaled) and the TCP options, as Wireshark writes them "
                        "(Win=65536 MSS=65495 SACK_PERM WS=128)")
    p.add_argument("-X", "--hex", action="store_true",
                   help="table: under each row, the IP and TCP headers field by field "
                        "(the bytes on the wire, the value after ntohs/ntohl, what a "
                        "little-endian CPU reads without them), the options' bytes and the "
                        "payload as tcpdump -X prints it; the bytes are read again from the "
                        "capture file (replay's, or capture's -w)")
    p.add_argument("--time", choices=TIME_MODES, default=None,
                   help="the table's Time column: seconds since the first segment "
                        "(relative, the default), local date and time (absolute, like "
                        "tcpdump -tttt), seconds since the previous segment (delta, like "
                        "-ttt) or since the previous segment of the same connection "
                        "(conn-delta)")
    _add_filters(p, count_help)
    p.add_argument("--msl", type=positive_float, default=DEFAULT_MSL, metavar="SECONDS",
                   help=f"maximum segment lifetime; TIME_WAIT lasts 2*MSL (default {DEFAULT_MSL:g})")
    p.add_argument("--hold", type=positive_float, default=DEFAULT_HOLD, metavar="SECONDS",
                   help="how long a SYN or FIN waits for the peer's answer before it is "
                        f"annotated (default {DEFAULT_HOLD:g})")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the table (auto: only on a terminal)")
    p.add_argument("-q", "--quiet", action="store_true", help="no closing summary line")


def _add_filters(p: argparse.ArgumentParser, count_help: str) -> None:
    """The display filters and the count."""
    p.add_argument("--conn", type=positive_int, action="append", metavar="N",
                   help="show only connection N (repeatable; exit 1 if N never appeared)")
    p.add_argument("--host", metavar="ADDR", help="show only segments to or from ADDR")
    p.add_argument("--port", type=port, metavar="PORT",
                   help="show only segments to or from PORT")
    p.add_argument("-c", "--count", type=positive_int, metavar="N", help=count_help)
