"""Where ``{pods,services,nodes}/proxy`` go: the real ``ResourceLocation`` of each registry.

1. **pods** ``[scheme:]name[:port]`` (pod/strategy.go): the pod's IP (``status.podIPs[0]``); no port
   given: the first declared ``containerPort``, else the scheme's default (80/443). No IP yet, or
   an address the rule of :func:`~miniapi.proxy.target.address_refusal` refuses: 400 ``address not
   allowed``. The pod's own addresses are its IP when it lies inside its node's ``spec.podCIDRs``
   (assigned by the controller-manager's node IPAM, or given at registration; immutable once set,
   unlike the pod IP, which the node reports) or, for ``hostNetwork`` pods, when it is one of its
   node's addresses.
2. **services** ``[scheme:]name[:port|portname]`` (service/storage/rest.go): a port *number* is
   first mapped to the service port's name (503 ``no service port 81 found for service "web"``);
   then, from a random subset of the Endpoints, a random *ready* address carrying that port name,
   which must point (``targetRef``) at a pod of this namespace whose IP it is (no ``targetRef``, as
   the ``kubernetes`` service's: skipped). No subsets: 503 ``no endpoints available for service
   "web"``; no usable address: the same with the whole id (``"web:http"``).
3. **nodes** ``[scheme:]name[:port]`` (node/strategy.go): the kubelet's address as
   ``--kubelet-preferred-address-types`` picks it (a name resolved once, see rule 3 of target.py);
   no port, or the kubelet's own port: the kubelet connection (https, whatever scheme was asked);
   another port: the scheme asked for, plain proxy transport.

Every answer of rules 1 and 2 depends only on stored objects and the id as written in the URL, so
it is kept with the store's revision (every write bumps it), by that unparsed id, and reused while
the revision stands (:meth:`Locator.kept`): a proxied request then costs no id parsing, no store read
and no address parsing. Any write, to whatever object, drops the kept answers, so nothing stale is
ever used; the random endpoint choice of rule 2 still happens on every request (a draw only where
there is a choice: one subset, one address need none). Errors are not kept. Rule 3 asks the kubelet
connection info (name lookups) every time.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from miniapi import errors
from miniapi.proxy.address import addresses_of
from miniapi.proxy.backend import Backend
from miniapi.proxy.errors import DialError, to_status
from miniapi.proxy.target import (
    APISERVER_HOST,
    ProxyId,
    ProxyRequestError,
    address_refusal,
    in_cidrs,
    is_loopback,
    numeric_port,
)
from miniapi.store import NotFound

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.proxy")
Obj = dict[str, Any]
_GO_INT = re.compile(r"[+-]?[0-9]+")
DEFAULT_PORTS = {"http": 80, "https": 443}
MEMO_SIZE = 1024
Candidates = tuple[tuple[Backend, ...], ...]  # per Endpoints subset: the usable addresses, ready to dial


def not_allowed(kind: str, name: str, address: str, why: str) -> errors.ApiError:
    log.info("proxy refused target=%s/%s address=%s: %s", kind, name, address, why)
    return errors.bad_request("address not allowed")


class Locator:
    def __init__(self, server: APIServer, rng: random.Random | None = None) -> None:
        self.server = server
        self.rng = rng or random.Random()
        self._memo: dict[tuple[str, str, str], tuple[int, Backend | Candidates]] = {}
        self._memo_revision = -1

    @property
    def apiserver_host(self) -> tuple[str, ...]:
        """Rule 3 of target.py: addresses of the apiserver's own host, never proxied to."""
        cfg = self.server.config
        mine = [a for a in (cfg.advertise_address, cfg.bind_address) if a and is_loopback(a)]
        return (*APISERVER_HOST, *mine)

    def kept(self, kind: str, namespace: str, raw: str) -> Backend | None:
        """The backend for ``{kind}/{raw}/proxy`` (``raw``: the id as written, ``https:web:8443``) from
        the answer kept for it, if no write happened since it was worked out; None: work it out."""
        kept = self._kept(kind, namespace, raw)
        if kept is None or isinstance(kept, Backend):
            return kept
        return self._pick(kept)

    def _kept(self, kind: str, namespace: str, raw: str) -> Backend | Candidates | None:
        revision = self.server.store.revision
        if revision != self._memo_revision:
            self._memo.clear()
            self._memo_revision = revision
            return None
        kept = self._memo.get((kind, namespace, raw))
        return kept[1] if kept is not None and kept[0] == revision else None

    def _keep(self, kind: str, namespace: str, raw: str, revision: int, answer: Backend | Candidates) -> None:
        """Keep ``answer``, worked out from what the store held at ``revision`` (read before the first get)."""
        if revision != self.server.store.revision:
            return  # a write slipped in while it was worked out
        if len(self._memo) >= MEMO_SIZE:
            self._memo.clear()
        self._memo[(kind, namespace, raw)] = (revision, answer)

    async def _get(self, key: str, namespace: str, name: str) -> Obj:
        try:
            obj: Obj = await self.server.store.get(key, namespace, name)
        except NotFound:
            raise errors.not_found(key, name) from None
        return obj

    async def _node_or_none(self, name: str) -> Obj | None:
        try:
            node: Obj = await self.server.store.get("nodes", "", name)
        except NotFound:
            return None
        return node

    # -- 1. pods ---------------------------------------------------------------------------------------
    async def pod(self, namespace: str, pid: ProxyId, raw: str) -> Backend:
        kept = self._kept("pods", namespace, raw)
        if isinstance(kept, Backend):
            return kept
        revision = self.server.store.revision
        try:
            port = numeric_port(pid.port)
        except ProxyRequestError:
            raise errors.bad_request(f'invalid pod request "{raw}"') from None
        pod = await self._get("pods", namespace, pid.name)
        if port is None:
            port = first_container_port(pod)
        ip = pod_ip(pod)
        why = await self.pod_refusal(pod, ip)
        if why:
            raise not_allowed("pods", f"{namespace}/{pid.name}", ip, why)
        scheme = pid.scheme or "http"
        backend = Backend(scheme, ip, port or DEFAULT_PORTS[scheme])
        self._keep("pods", namespace, raw, revision, backend)
        return backend

    async def pod_refusal(self, pod: Mapping[str, Any], ip: str) -> str | None:
        if not ip:
            return "the pod has no IP address yet"
        spec = pod.get("spec") or {}
        node = await self._node_or_none(str(spec.get("nodeName") or ""))
        own = []
        if node is not None:
            node_spec = node.get("spec") or {}
            cidrs = list(node_spec.get("podCIDRs") or []) or [node_spec.get("podCIDR") or ""]
            if in_cidrs(ip, [c for c in cidrs if c]):
                own.append(ip)
            if spec.get("hostNetwork") and ip in {a.address for a in addresses_of(node)}:
                own.append(ip)
        return address_refusal(ip, own, self.apiserver_host)

    # -- 2. services -----------------------------------------------------------------------------------
    async def service(self, namespace: str, pid: ProxyId, raw: str) -> Backend:
        candidates = self._kept("services", namespace, raw)
        if not isinstance(candidates, tuple):
            revision = self.server.store.revision
            candidates = await self.service_candidates(namespace, pid)
            if any(candidates):
                self._keep("services", namespace, raw, revision, candidates)
        if not any(candidates):
            raise errors.service_unavailable(f'no endpoints available for service "{raw}"')
        return self._pick(candidates)

    def _pick(self, candidates: Candidates) -> Backend:
        """A random non-empty subset (from a random start, the next one that has addresses), then a
        random address of it (service/storage/rest.go ResourceLocation)."""
        if len(candidates) == 1:
            subset = candidates[0]
        else:
            start = self.rng.randrange(len(candidates))
            subset = next(c for c in candidates[start:] + candidates[:start] if c)
        return subset[0] if len(subset) == 1 else subset[self.rng.randrange(len(subset))]

    async def service_candidates(self, namespace: str, pid: ProxyId) -> Candidates:
        """Per Endpoints subset, the ready addresses with the asked port that pass
        :meth:`endpoint_refusal`; the request picks a random subset, then a random address of it."""
        port_name, scheme = pid.port, pid.scheme or "http"
        if _GO_INT.fullmatch(port_name):
            number = int(port_name)
            svc = await self._get("services", namespace, pid.name)
            ports = (svc.get("spec") or {}).get("ports") or []
            match = next((p for p in ports if p.get("port") == number), None)
            if match is None:
                raise errors.service_unavailable(f'no service port {number} found for service "{pid.name}"')
            port_name = str(match.get("name") or "")
        eps = await self._get("endpoints", namespace, pid.name)
        subsets = list(eps.get("subsets") or [])
        if not subsets:
            raise errors.service_unavailable(f'no endpoints available for service "{pid.name}"')
        candidates = []
        for subset in subsets:
            usable: list[Backend] = []
            addresses = list(subset.get("addresses") or [])
            for port in subset.get("ports") or []:
                if str(port.get("name") or "") != port_name:
                    continue
                for address in addresses:
                    why = await self.endpoint_refusal(namespace, address)
                    if why:
                        log.info("proxy skipped endpoint service=%s/%s address=%s: %s", namespace, pid.name,
                                 address.get("ip"), why)
                        continue
                    usable.append(Backend(scheme, str(address["ip"]), int(port.get("port") or 0)))
            candidates.append(tuple(usable))
        return tuple(candidates)

    async def endpoint_refusal(self, namespace: str, address: Mapping[str, Any]) -> str | None:
        """isValidAddress, then the pod rule of step 1 for the pod behind it."""
        ref = address.get("targetRef")
        ip = str(address.get("ip") or "")
        if not isinstance(ref, dict):
            return f"Address has no target ref, skipping: {ip}"
        if ref.get("namespace") != namespace or ref.get("kind", "Pod") != "Pod":
            return "Address namespace doesn't match context namespace"
        try:
            pod = await self.server.store.get("pods", namespace, str(ref.get("name") or ""))
        except NotFound:
            return f"pods \"{ref.get('name')}\" not found"
        if ip not in pod_ips(pod):
            return f"pod ip(s) doesn't match endpoint ip, skipping: {pod_ips(pod)} vs {ip}"
        return await self.pod_refusal(pod, ip)

    # -- 3. nodes --------------------------------------------------------------------------------------
    async def node(self, pid: ProxyId, raw: str) -> Backend:
        try:
            port = numeric_port(pid.port)
        except ProxyRequestError:
            raise errors.bad_request(f'invalid node request "{raw}"') from None
        kubelet = self.server.kubelet
        try:
            info = await kubelet.connection_info(pid.name)
        except DialError as exc:
            raise to_status(exc) from None
        node = await self._get("nodes", "", pid.name)
        own = [a.address for a in addresses_of(node)]
        why = address_refusal(info.dial_host, own, self.apiserver_host)
        if why:
            raise not_allowed("nodes", pid.name, info.dial_host, why)
        if port is None or port == info.port:
            return Backend("https", info.dial_host, info.port, kubelet=info)
        scheme = pid.scheme or "http"
        return Backend(scheme, info.dial_host, port)


def pod_ips(pod: Mapping[str, Any]) -> list[str]:
    status = pod.get("status") or {}
    ips = [str(p.get("ip")) for p in status.get("podIPs") or [] if isinstance(p, dict) and p.get("ip")]
    return ips or ([str(status["podIP"])] if status.get("podIP") else [])


def pod_ip(pod: Mapping[str, Any]) -> str:
    ips = pod_ips(pod)
    return ips[0] if ips else ""


def first_container_port(pod: Mapping[str, Any]) -> int | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        ports = container.get("ports") or []
        if ports and isinstance(ports[0].get("containerPort"), int):
            return int(ports[0]["containerPort"])
    return None
