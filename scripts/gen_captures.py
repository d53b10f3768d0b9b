#!/usr/bin/env python3
"""Regenerate captures/: every scenario, captured live (needs root), plus golden outputs.

For each scenario NAME this writes captures/NAME.pcap (the live capture),
captures/NAME.json (the programs' report and the verdict) and captures/NAME.txt (what
`rawinspect replay captures/NAME.pcap` prints). Never edit these by hand.

    sudo .venv/bin/python scripts/gen_captures.py [NAME...]
    .venv/bin/python scripts/gen_captures.py --text-only   # only NAME.txt, from the pcaps
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
ATTEMPTS = 3  # a racy scenario that loses every race is run again


def capture(name: str, pcap: Path, report: Path) -> bool:
    """Run the scenario live until its expectations hold (racy ones may need retries)."""
    for _ in range(ATTEMPTS):
        live = subprocess.run([sys.executable, "-m", "rawinspect", "capture", name,
                               "-w", str(pcap), "--report", str(report), "-q",
                               "--color", "never"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        if live.returncode == 0:
            return True
    print(f"{name}: expectations not met\n{live.stdout[-2000:]}{live.stderr}",
          file=sys.stderr)
    return False


def main(args: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from rawinspect.scenarios import all_scenarios
    text_only = "--text-only" in args
    names = [n for n in args if n != "--text-only"] or list(all_scenarios())
    failed = []
    for name in names:
        pcap, report, text = (CAPTURES / f"{name}{ext}" for ext in (".pcap", ".json", ".txt"))
        if not text_only and not capture(name, pcap, report):
            failed.append(name)
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
