"""Connection summaries of many capture files, mapped per file with Dask's local scheduler.

The pattern for captures too many or too large for one process: one task per file (or per
flow-hash shard of a large one), each ``rawinspect.read(path).connections`` reduced to plain
rows, gathered into one table by Dask; the same code runs on a cluster by giving Dask a
distributed scheduler instead. Dask is not a dependency of rawinspect: install it first,

    .venv/bin/pip install dask

then: ``.venv/bin/python scripts/dask_summaries.py [FILE_OR_DIR ...]`` (default: the
bundled captures/). Prints one row per connection, then the conn_state counts.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def summarise(path: str) -> list[dict[str, Any]]:
    """One file's connections as plain rows (what travels back from a worker)."""
    import rawinspect
    capture = rawinspect.read(path, partial=True)
    rows = []
    for c in capture.connections:
        s = c.summary
        rows.append({"file": Path(path).name, "conn": c.number, "uid": s.uid,
                     "client": c.client.endpoint,
                     "server": c.server.endpoint,
                     "conn_state": s.conn_state, "history": s.history,
                     "client_final": c.client.final, "server_final": c.server.final,
                     "duration": round(s.duration, 6),
                     "findings": ",".join(f.rule for f in c.findings)})
    return rows


def files(args: list[str]) -> list[str]:
    """The capture files named, or found in the folders named."""
    out: list[str] = []
    for a in args or [str(ROOT / "captures")]:
        p = Path(a)
        out += (sorted(str(f) for f in p.iterdir() if f.suffix in (".pcap", ".pcapng"))
                if p.is_dir() else [str(p)])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="capture files or folders (default: captures/)")
    parser.add_argument("--workers", type=int, default=2, help="local processes (default 2)")
    args = parser.parse_args()
    try:
        import dask
        import dask.bag as db
    except ImportError:
        print("dask_summaries: needs Dask: .venv/bin/pip install dask", file=sys.stderr)
        return 1
    paths = files(args.paths)
    bag = db.from_sequence(paths, npartitions=max(1, len(paths))).map(summarise).flatten()
    with dask.config.set(scheduler="processes", num_workers=args.workers):
        rows = bag.compute()
    for r in rows:
        print("\t".join(str(r[k]) for k in ("file", "conn", "conn_state", "history",
                                            "client_final", "server_final", "findings")))
    states = Counter(r["conn_state"] for r in rows)
    print(f"{len(rows)} connections in {len(paths)} files: "
          + ", ".join(f"{k} {n}" for k, n in states.most_common()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
