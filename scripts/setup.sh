#!/usr/bin/env bash
# Create .venv with rawinspect and its test dependencies installed. The install compiles the
# replay path with mypyc (see setup.py; falls back to pure Python without a C compiler).
# For development, `.venv/bin/pip install -e .` installs the sources as they are instead.
# Live capture compiles BPF filters with libpcap (through scapy): install it if missing;
# likewise a C compiler (gcc) for the test that captures a C program's calls.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ldconfig -p 2>/dev/null | grep -q 'libpcap\.so'; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libpcap0.8) \
            >/dev/null || echo "note: could not install libpcap0.8: capture filters will fail" >&2
    else
        echo "note: libpcap not found; install libpcap0.8 for live capture filters" >&2
    fi
fi
# The calls tests compile a small C program (and mypyc compiles the replay path): a C
# compiler, Debian's gcc with the C library's headers, not all of build-essential.
if ! command -v cc >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends gcc libc6-dev) >/dev/null \
            || echo "note: could not install gcc: the C program test will not run" >&2
    else
        echo "note: no C compiler (cc); install gcc and libc6-dev for the C program test" >&2
    fi
fi
# The HTML report's tests open it in Debian's chromium, headless (never downloaded at run time).
if ! command -v chromium >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends chromium) >/dev/null 2>&1 \
            || echo "note: could not install chromium: the HTML report's browser tests will not run" >&2
    else
        echo "note: no chromium; install Debian's chromium for the HTML report's browser tests" >&2
    fi
fi
# The digest of everything the build is made from: an install whose stamp matches it, and
# that is a real install (not an editable one), is current, and is not built again.
stamp="$(cat setup.py pyproject.toml $(find rawinspect -name '*.py' -o -path '*/html_assets/*' \
         | LC_ALL=C sort) \
         | sha256sum | cut -d' ' -f1) pure=${RAWINSPECT_PURE:-}"
installed() {
    [ -f .venv/rawinspect.stamp ] && [ "$(cat .venv/rawinspect.stamp)" = "$stamp" ] &&
        .venv/bin/python -P -c 'import sys, rawinspect
sys.exit("/site-packages/" not in rawinspect.__file__)' 2>/dev/null
}
if installed; then
    echo "$(.venv/bin/python -P -m rawinspect --version) in $(pwd)/.venv is built from these" \
         "sources: not reinstalled"
    exit 0
fi
rm -f .venv/rawinspect.stamp
rm -rf build  # setuptools reuses it: modules since renamed or removed would ship again
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q '.[test]'
echo "$stamp" > .venv/rawinspect.stamp
echo "$(.venv/bin/python -P -m rawinspect --version) installed in $(pwd)/.venv (run .venv/bin/rawinspect)"
