"""Runs one scenario's programs in a process of their own and writes their report.

``python -m rawinspect.scenarios.child NAME HOST PORTS REPORT.json``. The capturing
process starts this after its sniffer is ready, so no SYN is missed.
"""

from __future__ import annotations

import json
import sys
import traceback

from . import all_scenarios
from .base import Context


def main(argv: list[str]) -> int:
    name, host, ports, report = argv
    ctx = Context(host, [int(p) for p in ports.split(",")])
    error = None
    try:
        all_scenarios()[name].run(ctx)
    except Exception as e:  # reported to the capturing process, which fails the run
        error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    result = ctx.result()
    result["error"] = error
    with open(report, "w") as f:
        json.dump(result, f)
    return 1 if error else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
