#!/usr/bin/env python3
"""Regenerate captures/: every scenario, captured live (needs root), plus golden outputs.

For each scenario NAME this writes captures/NAME.pcap (the live capture),
captures/NAME.json (the programs' report and the verdict) and captures/NAME.txt (what
`rawinspect replay captures/NAME.pcap` prints). Never edit these by hand.

    sudo .venv/bin/python scripts/gen_captures.py [NAME...]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
ATTEMPTS = 3  # a racy scenario that loses every race is run again


def main(names: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from rawinspect.scenarios import all_scenarios
    names = names or list(all_scenarios())
    failed = []
    for name in names:
        pcap, report, text = (CAPTURES / f"{name}{ext}" for ext in (".pcap", ".json", ".txt"))
        for _ in range(ATTEMPTS):
            live = subprocess.run([sys.executable, "-m", "rawinspect", "capture", name,
                                   "-w", str(pcap), "--report", str(report), "-q",
                                   "--color", "never"],
                                  cwd=ROOT, capture_output=True, text=True, timeout=120)
            if live.returncode == 0:
                break
        else:
            failed.append(name)
            print(f"{name}: expectations not met\n{live.stdout[-2000:]}{live.stderr}",
                  file=sys.stderr)
            continue
        replay = subprocess.run([sys.executable, "-m", "rawinspect", "replay", str(pcap), "-q",
                                 "--color", "never"], cwd=ROOT, capture_output=True,
                                text=True, check=True)
        text.write_text(replay.stdout)
        print(f"{name}: {pcap.stat().st_size} bytes, {replay.stdout.count(chr(10)) - 1} "
              "segments")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
