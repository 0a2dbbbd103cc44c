"""``lab scenario NAME``: one module per scenario of the workshop, each with ``NAME``, ``SUMMARY``,
``PATHS`` (the rows of minilab/profiles.py that decide its outcome) and ``run(ctx)``.

Numbers are the issue's/guide's: (1) kubelet-mitm, (3) kubelet-api. Still to come: (2) the relay
stopped by kubelet webhook authn/authz, (4) apiserver proxy over HTTP, (5) a stolen service-account
token, (6) TLS bootstrapping + scenario 1 against the CA-signed serving cert, (7) SSH tunnels,
(8) the agent tunnel, (9) control-plane components on the secure port.
"""

from __future__ import annotations

from types import ModuleType

from lab.scenarios import agent_tunnel, bootstrap, kubelet_api, kubelet_mitm, ssh_tunnel

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (kubelet_mitm, kubelet_api, bootstrap, ssh_tunnel, agent_tunnel)}
