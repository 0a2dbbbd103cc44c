"""The proxier: watch Services and Endpoints, and keep this node's service VIPs pointing at endpoints.

kube-proxy's loop (pkg/proxy), reduced:

1. two informers (LIST + WATCH) of all Services and all Endpoints, as ``system:kube-proxy``
   (ClusterRole ``system:node-proxier``: list/watch services and endpoints);
2. any change asks for a sync; syncs are at least ``--iptables-min-sync-period`` apart (default 1 s)
   and happen at least every ``--iptables-sync-period`` (default 30 s) anyway, the real
   BoundedFrequencyRunner;
3. a sync computes the wanted :class:`~.rules.ServicePort` list (pure) and hands it to the mode's
   backend: iptables (nat rules) or userspace (listeners); unchanged input is not re-applied;
4. on exit the backend cleans up (iptables chains removed, listeners closed); ``--cleanup`` does
   only that and exits.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from miniapi.controllermanager.base import Client
from miniapi.controllermanager.informer import Informer
from minikubeproxy.rules import ServicePort, service_ports

log = logging.getLogger("minikubeproxy")


class Backend(Protocol):
    name: str

    async def available(self) -> str | None: ...

    async def sync(self, ports: list[ServicePort]) -> None: ...

    async def cleanup(self) -> None: ...


class Proxier:
    def __init__(self, client: Client, backend: Backend, *, min_sync_period: float = 1.0,
                 sync_period: float = 30.0) -> None:
        self.backend = backend
        self.services = Informer(client, "services")
        self.endpoints = Informer(client, "endpoints")
        self.min_sync_period, self.sync_period = min_sync_period, sync_period
        self.synced_once = asyncio.Event()
        self._dirty = asyncio.Event()
        self._last: list[ServicePort] | None = None
        for informer in (self.services, self.endpoints):
            informer.add_handlers(lambda _o: self._dirty.set(), lambda _a, _b: self._dirty.set(),
                                  lambda _o: self._dirty.set())

    def wanted(self) -> list[ServicePort]:
        return service_ports(self.services.items(), self.endpoints.items())

    async def run(self) -> None:
        tasks = [asyncio.create_task(i.run(), name=f"informer {i.name}") for i in (self.services, self.endpoints)]
        try:
            await asyncio.gather(self.services.synced(), self.endpoints.synced())
            while True:
                self._dirty.clear()
                await self.sync()
                await asyncio.sleep(self.min_sync_period)
                try:
                    await asyncio.wait_for(self._dirty.wait(), self.sync_period)
                except TimeoutError:
                    self._last = None  # the periodic resync re-applies even an unchanged state
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def sync(self) -> None:
        ports = self.wanted()
        if ports == self._last:
            return
        try:
            await self.backend.sync(ports)
        except Exception as exc:  # a failed sync is retried at the next change or period
            log.warning("sync failed mode=%s: %s", self.backend.name, exc)
            return
        self._last = ports
        self.synced_once.set()
