#!/usr/bin/env bash
# Create .venv with rawinspect installed (editable) and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e '.[test]'
echo "rawinspect installed in $(pwd)/.venv (run .venv/bin/rawinspect)"
