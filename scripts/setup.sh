#!/usr/bin/env bash
# Create .venv with rawinspect and its test dependencies installed. The install compiles the
# replay path with mypyc (see setup.py; falls back to pure Python without a C compiler).
# For development, `.venv/bin/pip install -e .` installs the sources as they are instead.
# Live capture compiles BPF filters with libpcap (through scapy): install it if missing.
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
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q '.[test]'
echo "$(.venv/bin/python -P -m rawinspect --version) installed in $(pwd)/.venv (run .venv/bin/rawinspect)"
