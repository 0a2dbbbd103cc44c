"""What the CSR approving and signing controllers share: one cache of CertificateSigningRequests whose add
and update events put the name of every CSR the controller :meth:`~CSRController.wants` on its queue, and
a worker that hands each such CSR, read anew from the cache, to :meth:`~CSRController.reconcile`
(steps 1-3 of :mod:`.base`)."""

from __future__ import annotations

from miniapi.controllermanager.base import ControllerContext, Obj
from miniapi.controllermanager.workqueue import WorkQueue, process

CERTS = "certificates.k8s.io"


class CSRController:
    name = "csr"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client, self.clock = ctx.client, ctx.clock
        self.csrs = ctx.informers.get("certificatesigningrequests", CERTS)
        self.queue = WorkQueue(self.name)
        self.csrs.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new))

    def wants(self, csr: Obj) -> bool:
        """Whether this CSR is work for this controller (checked on every event and again in sync)."""
        raise NotImplementedError

    def _enqueue(self, csr: Obj) -> None:
        if self.wants(csr):
            self.queue.add(csr["metadata"]["name"])

    async def run(self) -> None:
        await self.csrs.synced()
        await process(self.queue, self.sync)

    async def sync(self, name: str) -> None:
        csr = self.csrs.get(name)
        if csr is not None and self.wants(csr):
            await self.reconcile(csr)

    async def reconcile(self, csr: Obj) -> None:
        raise NotImplementedError
