"""Which address of a Node the apiserver dials for its kubelet: pure functions over the Node object.

``--kubelet-preferred-address-types`` (default ``Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP``)
orders ``node.status.addresses``; the real apiserver takes the first address of the first type the
node reports (pkg/util/node GetPreferredNodeAddress) and the port from
``status.daemonEndpoints.kubeletEndpoint.Port`` (0 or missing: 10250)::

    status:
      addresses: [{type: InternalIP, address: 127.0.0.2}, {type: Hostname, address: node1}]
      daemonEndpoints: {kubeletEndpoint: {Port: 10250}}
    -> default order: Hostname "node1" first, then InternalIP "127.0.0.2"

Difference from the real one, on purpose: :func:`candidates` lists *every* preferred address in
order, so the dialer can skip a name that does not resolve (a local cluster's ``node1`` rarely does;
the real apiserver would fail with ``dial tcp: lookup node1 ...: no such host``, which is why kubeadm
passes ``InternalIP,ExternalIP,Hostname``). An IP address is always taken as it stands.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_KUBELET_PORT = 10250
NAME_TYPES = frozenset({"Hostname", "InternalDNS", "ExternalDNS"})


@dataclass(frozen=True)
class NodeAddress:
    type: str
    address: str


def addresses_of(node: Mapping[str, Any]) -> list[NodeAddress]:
    items = ((node.get("status") or {}).get("addresses")) or []
    return [NodeAddress(str(a.get("type", "")), str(a.get("address", ""))) for a in items
            if isinstance(a, dict) and a.get("address")]


def candidates(node: Mapping[str, Any], preferred: Sequence[str]) -> list[NodeAddress]:
    """The node's addresses of the preferred types, in preference order (node order within a type)."""
    known = addresses_of(node)
    return [a for t in preferred for a in known if a.type == t]


def known_addresses(node: Mapping[str, Any]) -> str:
    """Go's ``%v`` of []v1.NodeAddress: ``[{InternalIP 127.0.0.2} {Hostname node1}]``."""
    return "[" + " ".join(f"{{{a.type} {a.address}}}" for a in addresses_of(node)) + "]"


def kubelet_port(node: Mapping[str, Any], default: int = DEFAULT_KUBELET_PORT) -> int:
    endpoint = (((node.get("status") or {}).get("daemonEndpoints") or {}).get("kubeletEndpoint")) or {}
    port = endpoint.get("Port")
    return port if isinstance(port, int) and 0 < port < 65536 else default


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def join_host_port(host: str, port: int) -> str:
    """net.JoinHostPort: IPv6 literals in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
