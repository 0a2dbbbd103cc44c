"""A realistic attacker gives up on clients that verify: part of the attacker's mitmproxy addon
(lab/attacker/addon.py), for the connections to the apiserver's secure port (scenarios 5 and 9).

Intercepting every node -> apiserver:443 connection would break the cluster: the kubelets and
kube-proxy verify the apiserver against ca.crt and refuse mitmproxy's certificate, their nodes would
go NotReady, and the attacker would be noticed. So, like mitmproxy's contrib ``tls_passthrough``
example (our own small version, keyed by client address and server instead of server alone):

1. ``tls_failed_client``  a client refused our certificate for a server we give up on: remember the
                          pair (client address, server), say so, note it in the loot (``gave-up``).
2. ``tls_clienthello``    a remembered pair connects again: ``ignore_connection`` - mitmproxy passes
                          the bytes through untouched (loot ``passthrough``); the client talks to the
                          real apiserver and the attacker reads nothing.

Only servers in ``GIVE_UP_ON`` are given up on: the apiserver's secure port, and the Konnectivity
server's agent port (scenario 8: the agents dial OUT to it with mutual TLS; intercepting every retry
would only keep the node's tunnel down, a denial of service that reads nothing). On the apiserver ->
kubelet path a refusal is the lesson of scenario 1, and the attacker keeps trying there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from lab.attacker import loot

if TYPE_CHECKING:  # only mitmproxy's venv has it; the hooks need just the attributes (tests/lab/test_decode.py)
    from mitmproxy import tls

LOOT = loot.DEFAULT
APISERVER_IP = os.environ.get("LAB_APISERVER_IP", "10.221.1.10")
AGENT_PORT = 8132  # Konnectivity agents -> server (lab/tunnel.py)
GIVE_UP_ON = {f"{APISERVER_IP}:{os.environ.get('LAB_APISERVER_PORT', '443')}", f"{APISERVER_IP}:{AGENT_PORT}"}


def _pair(data: tls.ClientHelloData | tls.TlsData) -> tuple[str, str]:
    client = data.context.client.peername
    server = data.context.server.address
    return (str(client[0]) if client else "?", f"{server[0]}:{server[1]}" if server else "?")


class GiveUp:
    def __init__(self) -> None:
        self.refused: set[tuple[str, str]] = set()
        self.passed: dict[tuple[str, str], int] = {}

    def tls_failed_client(self, data: tls.TlsData) -> None:
        pair = _pair(data)
        if pair[1] in GIVE_UP_ON and pair not in self.refused:
            self.refused.add(pair)
            if pair[1].endswith(f":{AGENT_PORT}"):
                print(f"[attacker] the agent on {pair[0]} refused my certificate for {pair[1]} (mutual TLS with its "
                      "own CA): I pass its connections through from now on; I cannot read them", flush=True)
            print(f"[attacker] giving up on {pair[0]} -> {pair[1]}: it verifies; its connections pass through "
                  "untouched from now on (intercepting it would only break the cluster and give me away)",
                  flush=True)
            loot.record(LOOT, "gave-up", client=pair[0], server=pair[1])

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        pair = _pair(data)
        if pair in self.refused:
            data.ignore_connection = True
            self.passed[pair] = self.passed.get(pair, 0) + 1
            loot.record(LOOT, "passthrough", client=pair[0], server=pair[1], count=self.passed[pair])
