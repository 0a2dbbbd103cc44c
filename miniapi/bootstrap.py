"""What a fresh apiserver makes sure exists (its post-start hooks and in-process controllers).

1. Namespaces ``default``, ``kube-system``, ``kube-public``, ``kube-node-lease`` (the real
   system-namespaces controller).
2. (Not here: the ``default`` ServiceAccount and ``kube-root-ca.crt`` ConfigMap of every namespace are
   the controller-manager's duty, as in real Kubernetes; see miniapi.controllermanager.)
3. The default RBAC policy (cluster roles and bindings, ``rbac/bootstrap-roles`` post-start hook).
4. Deleting a namespace deletes everything in it (namespace controller, inline).
5. Service ``default/kubernetes`` (the apiserver's own kubernetesservice controller): ClusterIP = the
   first address of ``--service-cluster-ip-range``, port 443 -> ``--secure-port``; and its Endpoints
   ``--advertise-address`` (else a specific ``--bind-address``):``--secure-port``, made or corrected
   at every start (the real endpoint reconciler does it every 10 s). Pods reach that endpoint
   through the service's virtual IP and kube-proxy (minikubeproxy). Unlike the real apiserver, a
   loopback address is published: the local cluster runs everything on 127.0.0.0/8, so its
   apiserver's only address is 127.0.0.1 (real Endpoints validation refuses loopback; the docker lab
   advertises its container address).
"""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING

from miniapi import resources
from miniapi.authz.policy import ensure_default_policy
from miniapi.registry.base import stamp_new
from miniapi.store import AlreadyExists, NotFound, Obj, Store

if TYPE_CHECKING:
    from miniapi.server import APIServer

log = logging.getLogger("miniapi.bootstrap")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


class Bootstrap:
    def __init__(self, server: APIServer) -> None:
        self.server = server

    async def run(self) -> None:
        store = self.server.store
        for ns in SYSTEM_NAMESPACES:
            obj = {"apiVersion": "v1", "kind": "Namespace",
                   "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}
            await self._create(store, "namespaces", obj)
        await ensure_default_policy(store)
        await self.ensure_kubernetes_service()

    async def _create(self, store: Store, key: str, obj: Obj) -> None:
        stamp_new(obj)
        try:
            await store.create(key, obj)
        except AlreadyExists:
            pass

    async def ensure_kubernetes_service(self) -> None:
        cfg, store = self.server.config, self.server.store
        net = ipaddress.ip_network(cfg.service_cluster_ip_range)
        ip, family = str(net[1]), f"IPv{net.version}"
        port = cfg.secure_port or 6443
        await self._create(store, "services", {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "sessionAffinity": "None",
                     "ipFamilies": [family], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
            "status": {"loadBalancer": {}}})
        address = _advertised(cfg.advertise_address or cfg.bind_address)
        if not address:
            return
        subsets = [{"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]
        await self._create(store, "endpoints", {
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": subsets})

        def reconcile(ep: Obj) -> Obj:
            ep["subsets"] = subsets
            return ep

        current = await store.get("endpoints", "default", "kubernetes")
        if current.get("subsets") != subsets:  # restarted on another address or port
            await store.guaranteed_update("endpoints", "default", "kubernetes", reconcile)

    async def empty_namespace(self, namespace: str) -> None:
        store = self.server.store
        for rt in resources.RESOURCES:
            if not rt.namespaced or not rt.stored:
                continue
            items, _ = await store.list(rt.key, namespace)
            for item in items:
                try:
                    await store.delete(rt.key, namespace, item["metadata"]["name"])
                except NotFound:
                    pass
        log.info("namespace %s emptied", namespace)


def _advertised(address: str) -> str | None:
    """The address to publish in Endpoints, or None when it is unset or a wildcard (loopback: see 5.)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return None if ip.is_unspecified else str(ip)
