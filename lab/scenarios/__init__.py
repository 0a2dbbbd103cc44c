"""``lab scenario NAME``: one module per scenario of the workshop, each with ``NAME``, ``SUMMARY``,
``PATHS`` (the rows of minilab/profiles.py that decide its outcome) and ``run(ctx)``.

Numbers are the issue's/guide's: (1) kubelet-mitm, (3) kubelet-api, (6) bootstrap, (7) ssh-tunnel,
(8) agent-tunnel. Still to come: (2) the relay stopped by kubelet webhook authn/authz, (4) apiserver proxy
over HTTP, (5) a stolen service-account token, (9) control-plane components on the secure port.
"""

from __future__ import annotations

from types import ModuleType

from lab.scenarios import agent_tunnel, bootstrap, kubelet_api, kubelet_mitm, ssh_tunnel

SCENARIOS: dict[str, ModuleType] = {m.NAME: m for m in (kubelet_mitm, kubelet_api, bootstrap, ssh_tunnel, agent_tunnel)}
