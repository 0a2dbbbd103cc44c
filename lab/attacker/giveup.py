"""A second mitmproxy addon for the agent tunnel (scenario 8, ``agent-tunnel``): give up on what cannot be read.

Konnectivity agents dial OUT from the nodes to the server on the control plane (port 8132) with mutual TLS,
verifying the server's certificate against the tunnel CA. The attacker redirects those connections to
mitmproxy like any other; the agent refuses mitmproxy's forged certificate (addon.py records the
``tls-refused``). Intercepting every retry would only keep the node's tunnel down: a denial of service,
which an on-path attacker always has, but which reads nothing. So, after a node's agent refused once, its
later connections are passed through untouched (mitmproxy's ``ignore_connection``), and the loot says so
(``gave-up``). The scenario then shows ``kubectl logs``/``exec`` working through the tunnel, unread.

Loaded by lab/attacker/run.py next to addon.py when the agent port is among ``LAB_ATTACK_PORTS``.
"""

from __future__ import annotations

import os
from pathlib import Path

from mitmproxy import tls

from lab.attacker import loot

LOOT = Path(os.environ.get("LAB_LOOT", "/loot/loot.jsonl"))
AGENT_PORT = 8132


def _peer(data: tls.TlsData | tls.ClientHelloData) -> tuple[str, str]:
    client = data.context.client.peername
    server = data.context.server.address
    return (str(client[0]) if client else "?", f"{server[0]}:{server[1]}" if server else "?")


class GiveUp:
    def __init__(self) -> None:
        self.refused: set[tuple[str, str]] = set()

    def tls_failed_client(self, data: tls.TlsData) -> None:
        client, server = _peer(data)
        if server.endswith(f":{AGENT_PORT}") and (client, server) not in self.refused:
            self.refused.add((client, server))
            print(f"[attacker] the agent on {client} refused my certificate for {server} (mutual TLS with its own "
                  "CA): I pass its connections through from now on; I cannot read them", flush=True)
            loot.record(LOOT, "gave-up", client=client, server=server)

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if _peer(data) in self.refused:
            data.ignore_connection = True


addons = [GiveUp()]
