#!/usr/bin/env bash
# The docker lab's test stage by hand (as root): install docker.io/docker-compose/debootstrap if
# missing, start dockerd, build the base image, wheelhouse and lab image offline, then
#   all                         both profiles, every scenario, then clean up (the default)
#   prepare | up PROFILE | scenario NAME PROFILE | down | cleanup
# pytest runs the same steps in tests/lab/ (tests/lab/harness.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.lab.harness "$@"
