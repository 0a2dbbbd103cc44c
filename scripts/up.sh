#!/usr/bin/env bash
# Start the main job locally: make the PKI (kubeadm layout under _run/) and run the apiserver on
# https://127.0.0.1:6443 with kubeadm's hardened authorization (Node,RBAC) and real defaults otherwise.
# Usage: ./scripts/up.sh [extra miniapi flags...]     (Ctrl-C stops it; state persists in _run/data)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/miniapi ]; then
  "${PYTHON:-python3}" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
  .venv/bin/python -m pip install --quiet -e '.[test]'
fi
PORT=${PORT:-6443}
RUN=_run
.venv/bin/minipki init --dir "$RUN" --apiserver-url "https://127.0.0.1:$PORT" \
  --node node1=127.0.0.2 --node node2=127.0.0.3 | tail -1
# an unprivileged user for the RBAC exercises (client cert, CN=alice, O=developers)
[ -f "$RUN/alice.conf" ] || .venv/bin/minipki kubeconfig --dir "$RUN" --user alice --group developers \
  --server "https://127.0.0.1:$PORT" -o "$RUN/alice.conf" >/dev/null
cat <<MSG
PKI in $RUN/. Try, in another terminal:
  export PATH=\$PWD/.venv/bin:\$PATH
  kubectl --kubeconfig $RUN/admin.conf get namespaces
  kubectl --kubeconfig $RUN/alice.conf auth can-i list pods     # no: RBAC grants alice nothing yet
MSG
exec .venv/bin/miniapi --secure-port "$PORT" --bind-address 127.0.0.1 \
  --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
  --client-ca-file "$RUN/pki/ca.crt" --token-auth-file "$RUN/tokens.csv" \
  --service-account-signing-key-file "$RUN/pki/sa.key" --service-account-key-file "$RUN/pki/sa.pub" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --authorization-mode Node,RBAC --enable-bootstrap-token-auth \
  --kubelet-client-certificate "$RUN/pki/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$RUN/pki/apiserver-kubelet-client.key" \
  --data-dir "$RUN/data" --audit-log-path "$RUN/audit.log" "$@"
