"""What kube-proxy makes of Services and Endpoints: pure functions, no I/O.

1. :func:`service_ports` - one :class:`ServicePort` per TCP port of every Service with a ClusterIP
   (headless ``None`` and ``ExternalName`` services have none), named like kube-proxy's
   ``ServicePortName``: ``default/kubernetes:https`` (``default/web`` for an unnamed port). Its
   endpoints are the *ready* addresses (``subsets[].addresses``, never ``notReadyAddresses``) of the
   Endpoints object of the same name, taking the port whose name matches the service port's.
2. :func:`render_iptables` - the nat table as ``iptables-restore --noflush`` input, with the real
   chain layout and names (``KUBE-SVC-``/``KUBE-SEP-`` + the first 16 characters of base32(sha256)),
   the random choice among N endpoints by ``statistic`` probabilities 1/N, 1/(N-1), ..., 1::

       *nat
       :KUBE-SERVICES - [0:0]
       :KUBE-SVC-NPX46M4PTMTKRN6Y - [0:0]
       :KUBE-SEP-X33SAGFSVD6XTSRJ - [0:0]
       -A KUBE-SERVICES -d 127.96.0.1/32 -p tcp -m comment --comment "default/kubernetes:https cluster IP"
          -m tcp --dport 443 -j KUBE-SVC-NPX46M4PTMTKRN6Y
       -A KUBE-SVC-NPX46M4PTMTKRN6Y -m comment --comment "default/kubernetes:https -> 127.0.0.1:6443"
          -j KUBE-SEP-X33SAGFSVD6XTSRJ
       -A KUBE-SEP-X33SAGFSVD6XTSRJ -p tcp -m comment --comment default/kubernetes:https -m tcp
          -j DNAT --to-destination 127.0.0.1:6443
       COMMIT

   Not rendered, on purpose: masquerading (KUBE-MARK-MASQ/KUBE-POSTROUTING: all lab traffic is
   local), the filter table's REJECT for services without endpoints (a VIP without endpoints
   simply has no rule), NodePorts, load balancers, session affinity, UDP and SCTP.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Obj = Mapping[str, Any]
SERVICES_CHAIN = "KUBE-SERVICES"
JUMPS = (("OUTPUT", "kubernetes service portals"), ("PREROUTING", "kubernetes service portals"))


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if ":" in self.ip else f"{self.ip}:{self.port}"


@dataclass(frozen=True, order=True)
class ServicePort:
    name: str  # ServicePortName: "namespace/service:port" ("namespace/service" for an unnamed port)
    cluster_ip: str
    port: int
    protocol: str
    endpoints: tuple[Endpoint, ...]


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def service_ports(services: Iterable[Obj], endpoints: Iterable[Obj]) -> list[ServicePort]:
    """Rule 1, sorted by name (so that rendering is deterministic)."""
    by_key = {_key(e): e for e in endpoints}
    out: list[ServicePort] = []
    for svc in services:
        spec = svc.get("spec") or {}
        ip = str(spec.get("clusterIP") or "")
        if not ip or ip == "None" or spec.get("type") == "ExternalName":
            continue
        ns, name = _key(svc)
        ep = by_key.get((ns, name)) or {}
        for port in spec.get("ports") or []:
            protocol = str(port.get("protocol") or "TCP")
            if protocol != "TCP" or not isinstance(port.get("port"), int):
                continue
            port_name = str(port.get("name") or "")
            full = f"{ns}/{name}:{port_name}" if port_name else f"{ns}/{name}"
            out.append(ServicePort(full, ip, int(port["port"]), protocol, ready_endpoints(ep, port_name)))
    return sorted(out)


def ready_endpoints(endpoints: Obj, port_name: str) -> tuple[Endpoint, ...]:
    found: set[Endpoint] = set()
    for subset in endpoints.get("subsets") or []:
        for port in subset.get("ports") or []:
            if str(port.get("name") or "") != port_name or not isinstance(port.get("port"), int):
                continue
            for address in subset.get("addresses") or []:
                if address.get("ip"):
                    found.add(Endpoint(str(address["ip"]), int(port["port"])))
    return tuple(sorted(found))


def _hash(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def service_chain(sp: ServicePort, prefix: str = "KUBE") -> str:
    """servicePortChainName: ``KUBE-SVC-`` + portProtoHash(ServicePortName, protocol)."""
    return f"{prefix}-SVC-{_hash(sp.name + sp.protocol.lower())}"


def endpoint_chain(sp: ServicePort, ep: Endpoint, prefix: str = "KUBE") -> str:
    """servicePortEndpointChainName: ``KUBE-SEP-`` + hash(ServicePortName, protocol, endpoint)."""
    return f"{prefix}-SEP-{_hash(sp.name + sp.protocol.lower() + str(ep))}"


def _comment(text: str) -> str:
    return f'"{text}"' if " " in text else text


def render_iptables(ports: Sequence[ServicePort], prefix: str = "KUBE") -> str:
    """Rule 2. Every chain is declared (which flushes it), so applying twice gives the same table."""
    services = f"{prefix}-SERVICES"
    chains, rules = [services], []
    for sp in ports:
        if not sp.endpoints:
            continue
        svc = service_chain(sp, prefix)
        chains.append(svc)
        host = f"{sp.cluster_ip}/128" if ":" in sp.cluster_ip else f"{sp.cluster_ip}/32"
        rules.append(f"-A {services} -d {host} -p tcp -m comment --comment {_comment(sp.name + ' cluster IP')} "
                     f"-m tcp --dport {sp.port} -j {svc}")
        n = len(sp.endpoints)
        for i, ep in enumerate(sp.endpoints):
            sep = endpoint_chain(sp, ep, prefix)
            chains.append(sep)
            chance = f"-m statistic --mode random --probability {1 / (n - i):.10f} " if i < n - 1 else ""
            rules.append(f"-A {svc} -m comment --comment {_comment(f'{sp.name} -> {ep}')} {chance}-j {sep}")
            rules.append(f"-A {sep} -p tcp -m comment --comment {_comment(sp.name)} -m tcp "
                         f"-j DNAT --to-destination {ep}")
    lines = ["*nat", *(f":{c} - [0:0]" for c in chains), *rules, "COMMIT", ""]
    return "\n".join(lines)


def stale_chains(existing: Iterable[str], wanted_text: str, prefix: str = "KUBE") -> list[str]:
    """Our chains (``<prefix>-SVC-``/``-SEP-``) in the table that the new rules no longer declare."""
    wanted = {line[1:].split()[0] for line in wanted_text.splitlines() if line.startswith(":")}
    ours = (f"{prefix}-SVC-", f"{prefix}-SEP-")
    return sorted(c for c in existing if c.startswith(ours) and c not in wanted)
