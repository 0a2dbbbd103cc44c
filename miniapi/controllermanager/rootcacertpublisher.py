"""root-ca-cert-publisher: every namespace has a ConfigMap ``kube-root-ca.crt`` holding the cluster CA
(pkg/controller/certificates/rootcacertpublisher), which projected service-account volumes mount so
pods can verify the apiserver.

Rules:

1. A namespace added or updated is synced; so is the namespace of a ``kube-root-ca.crt`` ConfigMap that
   is updated or deleted (edit it or delete it, and it comes back).
2. A namespace that is gone or terminating is left alone.
3. Missing: create it with ``data: {ca.crt: <--root-ca-file>}`` and the annotation
   ``kubernetes.io/description`` (below). NotFound/Forbidden because the namespace is going are not
   retried.
4. Present: if ``data`` is exactly ``{ca.crt: <CA>}`` and the annotation is non-empty, nothing to do;
   otherwise replace ``data`` and set the annotation, keeping other labels and annotations (PUT with
   the cached resourceVersion, so a concurrent edit is a 409 and a retry).
"""

from __future__ import annotations

import copy
import logging

from miniapi.client import ClientError
from miniapi.controllermanager.base import ControllerContext, Obj
from miniapi.controllermanager.serviceaccount import is_active
from miniapi.controllermanager.workqueue import WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.rootcacertpublisher")

CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal "
               "endpoints such as the internal service IP or kubernetes.default.svc. No other usage is "
               "guaranteed across distributions of Kubernetes clusters.")


def desired(namespace: str, ca: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CONFIGMAP, "namespace": namespace,
                         "annotations": {DESCRIPTION_ANNOTATION: DESCRIPTION}},
            "data": {"ca.crt": ca}}


def repaired(cm: Obj, ca: str) -> Obj | None:
    """Rule 4: the ConfigMap to PUT, or None if it is already right."""
    annotations = (cm.get("metadata") or {}).get("annotations") or {}
    if cm.get("data") == {"ca.crt": ca} and annotations.get(DESCRIPTION_ANNOTATION):
        return None
    out = copy.deepcopy(cm)
    out.setdefault("apiVersion", "v1")
    out.setdefault("kind", "ConfigMap")
    out["data"] = {"ca.crt": ca}
    out.pop("binaryData", None)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), DESCRIPTION_ANNOTATION: DESCRIPTION}
    return out


class RootCACertPublisher:
    name = "root-ca-cert-publisher"

    def __init__(self, ctx: ControllerContext, root_ca: str) -> None:
        self.client, self.root_ca = ctx.client, root_ca
        self.namespaces = ctx.informers.get("namespaces")
        self.configmaps = ctx.informers.get("configmaps", field_selector=f"metadata.name={CONFIGMAP}")
        self.queue = WorkQueue(self.name)
        self.namespaces.add_handlers(on_add=self._enqueue_ns, on_update=lambda old, new: self._enqueue_ns(new))
        self.configmaps.add_handlers(on_update=lambda old, new: self._enqueue_cm(new), on_delete=self._enqueue_cm)

    def _enqueue_ns(self, ns: Obj) -> None:
        self.queue.add(ns["metadata"]["name"])

    def _enqueue_cm(self, cm: Obj) -> None:
        meta = cm.get("metadata") or {}
        if meta.get("name") == CONFIGMAP:
            self.queue.add(meta.get("namespace", ""))

    async def run(self) -> None:
        await self.namespaces.synced()
        await self.configmaps.synced()
        await process(self.queue, self.sync)

    async def sync(self, namespace: str) -> None:
        if not is_active(self.namespaces.get(namespace)):
            return
        cm = self.configmaps.get(f"{namespace}/{CONFIGMAP}")
        try:
            if cm is None:
                await self.client.create("configmaps", desired(namespace, self.root_ca), namespace=namespace)
                log.info("configmap %s/%s created", namespace, CONFIGMAP)
                return
            fixed = repaired(cm, self.root_ca)
            if fixed is not None:
                await self.client.update("configmaps", fixed, namespace=namespace)
                log.info("configmap %s/%s restored", namespace, CONFIGMAP)
        except ClientError as exc:
            if exc.code in (403, 404) and not is_active(self.namespaces.get(namespace)):
                return
            raise
