"""The userspace mode, for where iptables cannot be used (no binary, not root): kube-proxy itself
listens on every ``ClusterIP:port`` and copies bytes to an endpoint.

Kubernetes had such a mode until 1.26 (``--proxy-mode=userspace``, removed); it listened on a random
local port and let iptables redirect the VIP there. Here the VIP itself is listened on, which works
when the VIP can be bound: any address of 127.0.0.0/8 on Linux (the local cluster's
``--service-cluster-ip-range`` is loopback for that reason), or an address configured on an
interface. Ports below 1024 (the ``kubernetes`` service's 443) need root or CAP_NET_BIND_SERVICE.

Per connection: endpoints are tried in round-robin order, the next one when a connect fails (the old
userspace proxier's ``LoadBalancerRR`` with ``sessionAffinity: None``); then bytes are copied both
ways, each direction until its sender closes (a half-close is passed on, a reset aborts both). A
service that loses all its endpoints keeps its listener: new connections are closed at once (the
client sees a reset, as with iptables' REJECT).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from minikubeproxy.rules import Endpoint, ServicePort

log = logging.getLogger("minikubeproxy.userspace")
CHUNK = 64 * 1024
CONNECT_TIMEOUT = 5.0


@dataclass
class Portal:
    """One listening ``ClusterIP:port`` and the endpoints behind it (updated in place)."""

    port: ServicePort
    server: asyncio.Server | None = None
    counter: itertools.count[int] = field(default_factory=itertools.count)

    def order(self) -> list[Endpoint]:
        eps = list(self.port.endpoints)
        if not eps:
            return []
        start = next(self.counter) % len(eps)
        return eps[start:] + eps[:start]


class UserspaceBackend:
    name = "userspace"

    def __init__(self) -> None:
        self.portals: dict[tuple[str, int], Portal] = {}
        self._conns: set[asyncio.Task[None]] = set()

    async def available(self) -> str | None:
        return None

    async def sync(self, ports: Sequence[ServicePort]) -> None:
        wanted = {(p.cluster_ip, p.port): p for p in ports}
        for key in [k for k in self.portals if k not in wanted]:
            await self._close(self.portals.pop(key))
        for key, sp in wanted.items():
            portal = self.portals.get(key)
            if portal is None:
                portal = self.portals[key] = Portal(sp)
                await self._listen(portal)
            portal.port = sp
        log.info("userspace synced portals=%d listening=%d", len(self.portals),
                 sum(1 for p in self.portals.values() if p.server is not None))

    async def _listen(self, portal: Portal) -> None:
        sp = portal.port
        try:
            portal.server = await asyncio.start_server(lambda r, w: self._accept(portal, r, w), sp.cluster_ip,
                                                       sp.port, reuse_address=True)
        except OSError as exc:
            log.warning("cannot listen on %s:%d for %s: %s (this service stays unreachable)", sp.cluster_ip, sp.port,
                        sp.name, exc.strerror or exc)
            return
        log.info("listening service=%s portal=%s:%d", sp.name, sp.cluster_ip, sp.port)

    async def _close(self, portal: Portal) -> None:
        if portal.server is not None:
            portal.server.close()
            with contextlib.suppress(Exception):
                await portal.server.wait_closed()
        log.info("closed service=%s portal=%s:%d", portal.port.name, portal.port.cluster_ip, portal.port.port)

    def _accept(self, portal: Portal, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._serve(portal, reader, writer))
        self._conns.add(task)
        task.add_done_callback(self._conns.discard)

    async def _serve(self, portal: Portal, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream = None
        for ep in portal.order():
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    upstream = await asyncio.open_connection(ep.ip, ep.port)
                break
            except (OSError, TimeoutError) as exc:
                log.info("endpoint failed service=%s endpoint=%s: %s", portal.port.name, ep, exc)
        if upstream is None:
            writer.transport.abort()
            return
        up_reader, up_writer = upstream
        copies = [asyncio.create_task(_copy(reader, up_writer)), asyncio.create_task(_copy(up_reader, writer))]
        try:
            await asyncio.gather(*copies)  # each direction ends with a half-close of the other side
        finally:
            for task in copies:
                task.cancel()
            await asyncio.gather(*copies, return_exceptions=True)
            for w in (writer, up_writer):
                w.close()

    async def cleanup(self) -> None:
        for portal in self.portals.values():
            await self._close(portal)
        self.portals.clear()
        for task in list(self._conns):
            task.cancel()
        await asyncio.gather(*self._conns, return_exceptions=True)


async def _copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    """Until EOF (then half-close ``dst``) or an error (then abort ``dst``, which ends the other copy)."""
    try:
        while data := await src.read(CHUNK):
            dst.write(data)
            await dst.drain()
    except OSError:
        dst.transport.abort()
        return
    with contextlib.suppress(OSError):
        if dst.can_write_eof():
            dst.write_eof()
