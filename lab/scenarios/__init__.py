"""``lab scenario NAME``: one module per scenario of the workshop, each with ``NAME``, ``SUMMARY``,
``PATHS`` (the rows of minilab/profiles.py that decide its outcome) and ``run(ctx)``.

Numbers are the issue's/guide's: (1) kubelet-mitm, (2) kubelet-relay (the relay stopped by kubelet
webhook authn/authz), (3) kubelet-api, (4) apiserver-proxy (pod/service proxy read and altered over
HTTP and https:), (5) sa-token (a pod's service-account token stolen and replayed, RBAC limiting it),
(6) bootstrap (TLS bootstrapping + scenario 1 against the CA-signed serving cert), (7) ssh-tunnel,
(8) agent-tunnel, (9) secure-port (nodes' components verify the apiserver; the attacker gives up).
"""

from __future__ import annotations

from types import ModuleType

from lab.scenarios import (
                           agent_tunnel,
                           apiserver_proxy,
                           bootstrap,
                           kubelet_api,
                           kubelet_mitm,
                           kubelet_relay,
                           sa_token,
                           secure_port,
                           ssh_tunnel,
)

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (kubelet_mitm, kubelet_relay, kubelet_api, apiserver_proxy,
                                                        sa_token, bootstrap, ssh_tunnel, agent_tunnel, secure_port)}
