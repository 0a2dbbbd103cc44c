"""What every controller shares: the client protocol it talks through, the context it is built from,
and the Kubernetes time and condition helpers.

A controller here is what it is in kube-controller-manager:

1. it asks the shared :class:`~.informer.InformerFactory` for the caches it reads (never LISTs in a loop);
2. its event handlers only put keys (``namespace/name``) on its :class:`~.workqueue.WorkQueue`;
3. a worker takes a key, looks the object up in the cache, computes what should change (a pure
   function, tested without a server) and writes it with one API call;
4. a failed write is retried with per-key exponential back-off; the next watch event re-triggers it anyway.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from miniapi.controllermanager.config import Config
    from miniapi.controllermanager.events import EventRecorder
    from miniapi.controllermanager.informer import InformerFactory

Obj = dict[str, Any]


class Client(Protocol):
    """The verbs of :class:`miniapi.client.KubeClient` the controllers use (tests pass a fake)."""

    async def request(self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None,
                      content_type: str = "application/json") -> Any: ...

    async def list(self, resource: str, namespace: str = "", group: str = "", **params: str) -> Obj: ...

    def watch(self, resource: str, namespace: str = "", group: str = "", resource_version: str = "",
              timeout_seconds: int = 300, **params: str) -> AsyncIterator[Obj]: ...

    async def get(self, resource: str, name: str, namespace: str = "", group: str = "",
                  subresource: str = "") -> Obj: ...

    async def create(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     name: str = "", subresource: str = "") -> Obj: ...

    async def update(self, resource: str, obj: Obj, namespace: str = "", group: str = "",
                     subresource: str = "") -> Obj: ...

    async def patch(self, resource: str, name: str, patch: Any, namespace: str = "", group: str = "",
                    subresource: str = "", patch_type: str = "application/merge-patch+json") -> Obj: ...

    async def delete(self, resource: str, name: str, namespace: str = "", group: str = "",
                     grace_period_seconds: int | None = None) -> Any: ...


class Controller(Protocol):
    name: str

    async def run(self) -> None:
        """Wait for the caches, then work until cancelled."""


@dataclass
class ControllerContext:
    """What the manager hands each controller's constructor (kube's ControllerContext)."""

    client: Client
    informers: InformerFactory
    config: Config
    recorder: Callable[[str], EventRecorder]
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


def key_of(obj: Obj) -> str:
    """cache.MetaNamespaceKeyFunc: ``namespace/name``, or ``name`` for cluster-scoped objects."""
    meta = obj.get("metadata") or {}
    ns, name = meta.get("namespace") or "", meta.get("name") or ""
    return f"{ns}/{name}" if ns else str(name)


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


def format_time(t: dt.datetime) -> str:
    """metav1.Time on the wire: RFC 3339, seconds precision, ``Z``."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(t: dt.datetime) -> str:
    """metav1.MicroTime (Lease renewTime, Event eventTime): microseconds."""
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: object) -> dt.datetime | None:
    """metav1.Time or MicroTime -> aware datetime; None for absent or unparseable values."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type ``kind`` (Ready, Approved, PodScheduled...), if any."""
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if isinstance(cond, dict) and cond.get("type") == kind:
            return cond
    return None


def is_true(obj: Obj, kind: str) -> bool:
    cond = condition(obj, kind)
    return cond is not None and cond.get("status", "True") == "True"


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))
