"""serviceaccount: every namespace has a ServiceAccount ``default``
(pkg/controller/serviceaccount/serviceaccounts_controller.go).

Rules:

1. A namespace that is added or updated is synced; so is the namespace of a deleted ``default``
   ServiceAccount (a learner who deletes it sees it come back).
2. A namespace that is gone or terminating (phase Terminating or a deletionTimestamp) is left alone.
3. If the cache has no ``default`` ServiceAccount in it, create one (nothing but a name: tokens are
   requested per pod with TokenRequest, no Secret is made). AlreadyExists means someone was faster;
   NotFound/Forbidden because the namespace is being deleted are not retried.
"""

from __future__ import annotations

import logging

from miniapi.client import ClientError
from miniapi.controllermanager.base import ControllerContext, Obj, is_deleting
from miniapi.controllermanager.workqueue import WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.serviceaccount")

SERVICE_ACCOUNTS = ("default",)


def is_active(namespace: Obj | None) -> bool:
    """Rule 2."""
    if namespace is None or is_deleting(namespace):
        return False
    return bool((namespace.get("status") or {}).get("phase", "Active") != "Terminating")


def missing(namespace: str, have: set[str]) -> list[str]:
    """Rule 3: the names of SERVICE_ACCOUNTS absent from ``have`` (``namespace/name`` keys)."""
    return [name for name in SERVICE_ACCOUNTS if f"{namespace}/{name}" not in have]


def service_account(namespace: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


class ServiceAccountsController:
    name = "serviceaccount"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.namespaces = ctx.informers.get("namespaces")
        self.accounts = ctx.informers.get("serviceaccounts")
        self.queue = WorkQueue(self.name)
        self.namespaces.add_handlers(on_add=self._enqueue_ns, on_update=lambda old, new: self._enqueue_ns(new))
        self.accounts.add_handlers(on_delete=self._account_deleted)

    def _enqueue_ns(self, ns: Obj) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _account_deleted(self, sa: Obj) -> None:
        meta = sa.get("metadata") or {}
        if meta.get("name") in SERVICE_ACCOUNTS:
            self.queue.add(meta.get("namespace", ""))

    async def run(self) -> None:
        await self.namespaces.synced()
        await self.accounts.synced()
        await process(self.queue, self.sync)

    async def sync(self, namespace: str) -> None:
        if not is_active(self.namespaces.get(namespace)):
            return
        for name in missing(namespace, set(self.accounts.keys())):
            try:
                await self.client.create("serviceaccounts", service_account(namespace, name), namespace=namespace)
            except ClientError as exc:
                if exc.code == 409:
                    continue
                if exc.code in (403, 404) and not is_active(self.namespaces.get(namespace)):
                    return
                raise
            log.info("serviceaccount %s/%s created", namespace, name)
