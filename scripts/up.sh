#!/usr/bin/env bash
# Start the main job locally: `minilab up` makes the PKI (kubeadm layout under _run/lab) and starts the
# apiserver (https://127.0.0.1:6443), the controller-manager and 2 kubelets (127.0.0.2, 127.0.0.3, ports
# 10250/10255) as background processes, waits until every node is Ready and prints what to try next.
# Usage: ./scripts/up.sh [minilab up flags...]    e.g. --profile hardened, --nodes 3,
#        --set kubelet-authn=hardened, --join-with-bootstrap-token node9   (see: .venv/bin/minilab up -h)
# Stop everything (pods included) with: .venv/bin/minilab down     State persists in _run/lab/data.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/minilab ]; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet -e '.[test]'
fi
LAB=${LAB:-_run/lab}
PORT=${PORT:-6443}
.venv/bin/minilab --dir "$LAB" up --port "$PORT" "$@"
# an unprivileged user for the RBAC exercises (client cert, CN=alice, O=developers)
[ -f "$LAB/alice.conf" ] || .venv/bin/minipki kubeconfig --dir "$LAB" --user alice --group developers \
  --server "https://127.0.0.1:$PORT" --key-type ec -o "$LAB/alice.conf" >/dev/null
echo "  kubectl --kubeconfig $LAB/alice.conf auth can-i list pods   # no: RBAC grants alice nothing yet"
