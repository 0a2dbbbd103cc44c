"""nodeipam: give every node a pod CIDR out of ``--cluster-cidr`` (pkg/controller/nodeipam, the
RangeAllocator over a cidrset), only with ``--allocate-node-cidrs``.

Rules:

1. The cluster CIDR is cut into ``/--node-cidr-mask-size`` blocks: 10.244.0.0/16 with /24 gives
   10.244.0.0/24, 10.244.1.0/24, ... 10.244.255.0/24.
2. Before allocating anything, every CIDR already in a node's ``spec.podCIDRs`` (or ``podCIDR``) is
   marked used, so a restarted controller never hands out a CIDR twice.
3. A node without a pod CIDR gets the next free block after the last one handed out (wrapping
   around, as the real cidrset does); written with a merge PATCH
   ``{"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]}}``.
   Kubernetes never changes a node's podCIDR once set.
4. A deleted node's block is released. A failed PATCH releases the block it was to get.
5. No block left: a ``CIDRNotAvailable`` event on the node, retried with back-off.
"""

from __future__ import annotations

import ipaddress
import logging

from miniapi.controllermanager.base import ControllerContext, Obj
from miniapi.controllermanager.events import NORMAL
from miniapi.controllermanager.workqueue import Requeue, WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.nodeipam")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CIDRSetError(ValueError):
    """A CIDR outside the cluster CIDR, of the wrong size, or no CIDR left."""


class CIDRSet:
    """The blocks of size /mask in ``cluster_cidr`` (rule 1) and which are used."""

    def __init__(self, cluster_cidr: str, mask_size: int) -> None:
        self.cluster: Network = ipaddress.ip_network(cluster_cidr)
        if not self.cluster.prefixlen <= mask_size <= self.cluster.max_prefixlen:
            raise CIDRSetError(f"node CIDR mask /{mask_size} does not fit in {self.cluster}")
        if mask_size - self.cluster.prefixlen > 16:
            raise CIDRSetError("the node CIDR size is too big: at most 65536 node CIDRs per cluster CIDR")
        self.mask = mask_size
        self.size = 1 << (mask_size - self.cluster.prefixlen)
        self._used: set[int] = set()
        self._next = 0

    def __len__(self) -> int:
        return len(self._used)

    def _block(self, index: int) -> Network:
        step = 1 << (self.cluster.max_prefixlen - self.mask)
        return ipaddress.ip_network((int(self.cluster.network_address) + index * step, self.mask))

    def _index(self, cidr: str) -> int:
        net = ipaddress.ip_network(cidr, strict=False)
        inside = int(self.cluster.network_address) <= int(net.network_address) <= int(self.cluster.broadcast_address)
        if net.version != self.cluster.version or net.prefixlen != self.mask or not inside:
            raise CIDRSetError(f"{cidr} is not a /{self.mask} block of {self.cluster}")
        step = 1 << (self.cluster.max_prefixlen - self.mask)
        return (int(net.network_address) - int(self.cluster.network_address)) // step

    def allocate(self) -> str:
        for i in range(self.size):
            index = (self._next + i) % self.size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % self.size
                return str(self._block(index))
        raise CIDRSetError("CIDR allocation failed; there are no remaining CIDRs left to allocate in the "
                           "accepted range")

    def occupy(self, cidr: str) -> None:
        self._used.add(self._index(cidr))

    def release(self, cidr: str) -> None:
        self._used.discard(self._index(cidr))

    def is_used(self, cidr: str) -> bool:
        return self._index(cidr) in self._used


def pod_cidrs(node: Obj) -> list[str]:
    spec = node.get("spec") or {}
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    return [str(c) for c in cidrs]


class NodeIPAMController:
    name = "nodeipam"

    def __init__(self, ctx: ControllerContext) -> None:
        cfg = ctx.config
        self.client = ctx.client
        self.cidrs = CIDRSet(cfg.cluster_cidr, cfg.node_cidr_mask_size)
        self.recorder = ctx.recorder("cidrAllocator")
        self.nodes = ctx.informers.get("nodes")
        self.queue = WorkQueue(self.name)
        self._assigned: dict[str, str] = {}
        self.nodes.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                on_delete=self._release)

    def _enqueue(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        if pod_cidrs(node):
            self._assigned.pop(name, None)  # our PATCH (or someone's) is in the cache now
        else:
            self.queue.add(name)

    def _release(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        pending = self._assigned.pop(name, None)
        for cidr in pod_cidrs(node) or ([pending] if pending else []):
            try:
                self.cidrs.release(cidr)
            except CIDRSetError:
                continue
            log.info("node %s deleted, released %s", name, cidr)

    async def run(self) -> None:
        await self.nodes.synced()
        for node in self.nodes.items():  # rule 2
            for cidr in pod_cidrs(node):
                try:
                    self.cidrs.occupy(cidr)
                except CIDRSetError as exc:
                    log.warning("node %s: ignoring pod CIDR: %s", node["metadata"]["name"], exc)
        for node in self.nodes.items():
            self._enqueue(node)
        await process(self.queue, self.sync)

    async def sync(self, name: str) -> None:
        node = self.nodes.get(name)
        if node is None or pod_cidrs(node) or name in self._assigned:
            return
        try:
            cidr = self.cidrs.allocate()
        except CIDRSetError as exc:
            await self.recorder.event(node, "Node", NORMAL, "CIDRNotAvailable",
                                      f"Node {name} status is now: CIDRNotAvailable")
            raise Requeue(str(exc)) from None
        try:
            await self.client.patch("nodes", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})
        except Exception:
            self.cidrs.release(cidr)
            raise
        self._assigned[name] = cidr  # until the watch shows it (the real nodesInProcessing)
        log.info("node %s: podCIDR %s allocated", name, cidr)
