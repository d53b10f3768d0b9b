#!/usr/bin/env bash
# Set up a virtual environment with rawinspect and its test dependencies, then run the tests.
# pytest's exit 5 ("no tests collected") counts as a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v tshark >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # tshark is optional: tests compare against it when it is there.
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tshark) \
        >/dev/null 2>&1 || echo "note: tshark not installed; tests use reference.tsv only"
fi
if ! command -v tcpdump >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    # -X's dump is compared with tcpdump -X's (under CI a missing tcpdump fails that test).
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tcpdump) \
        >/dev/null 2>&1 || echo "note: tcpdump not installed; the -X comparison cannot run"
fi
bash scripts/setup.sh
# What the tests can use here: a test whose reference set or tool is missing is skipped (-rs
# says why), or fails under CI.
inputs=""
for dir in ../shared/pcaps/public ../shared/pcaps/zeek-baselines; do
    [ -d "$dir" ] && item="$dir" || item="$dir (missing)"
    inputs="${inputs:+$inputs, }$item"
done
for tool in tshark tcpdump cc chromium; do
    command -v "$tool" >/dev/null 2>&1 && item="$tool" || item="$tool (missing)"
    inputs="${inputs:+$inputs, }$item"
done
echo "test inputs: $inputs"
set +e
# -P: import the installed rawinspect (compiled), not the sources in this directory.
.venv/bin/python -P -m pytest -q -rs "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
exit "$rc"
