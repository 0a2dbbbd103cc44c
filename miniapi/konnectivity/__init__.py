"""A Konnectivity-style apiserver network proxy: the replacement for the SSH tunnels.

``server`` runs on the control plane, ``agent`` on every node; agents dial OUT to the server and keep
one multiplexed tunnel each (:mod:`.codec`, our framing of the real gRPC Packet types), so nodes need
no inbound port from the control plane. The apiserver reaches the server through its egress selector
(``--egress-selector-config-file``, :mod:`miniapi.proxy.egress`) with HTTP CONNECT.
"""

from miniapi.konnectivity.agent import AgentOptions, ProxyAgent
from miniapi.konnectivity.server import ProxyServer, ServerOptions

__all__ = ["AgentOptions", "ProxyAgent", "ProxyServer", "ServerOptions"]
