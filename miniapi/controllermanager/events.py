"""Event recording: core/v1 Events as client-go's EventRecorder writes them.

1. An Event lives in the namespace of the object it is about; events about cluster-scoped objects
   (nodes) go to ``default``, as in kube.
2. Its name is ``<object name>.<hex nanoseconds>``; ``involvedObject`` names the object (kind,
   apiVersion, namespace, name, uid, resourceVersion); ``source.component`` is the component
   (``default-scheduler``, ``node-controller``...).
3. The same (object, type, reason, message) again within the process's memory is not a new Event:
   the existing one gets ``count + 1`` and a new ``lastTimestamp`` (a merge PATCH), as the
   EventCorrelator does; if it was deleted meanwhile, a new one is created.
4. Recording never fails the caller: an API error is logged and dropped (events are best effort).

Wire example (POST /api/v1/namespaces/default/events)::

    {"apiVersion":"v1","kind":"Event","metadata":{"name":"web.17c3a1f0e2b1d3a0","namespace":"default"},
     "involvedObject":{"kind":"Pod","namespace":"default","name":"web","uid":"...","apiVersion":"v1"},
     "reason":"FailedScheduling","message":"0/2 nodes are available: 2 node(s) were not ready.",
     "source":{"component":"default-scheduler"},"type":"Warning","count":1,
     "firstTimestamp":"2025-01-01T00:00:00Z","lastTimestamp":"2025-01-01T00:00:00Z"}
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from miniapi.client import ClientError
from miniapi.controllermanager.base import Client, Obj, format_time

log = logging.getLogger("miniapi.controllermanager.events")

NORMAL, WARNING = "Normal", "Warning"
_CACHE_SIZE = 4096


def involved_object(obj: Obj, kind: str, api_version: str = "v1") -> Obj:
    meta = obj.get("metadata") or {}
    ref: Obj = {"kind": obj.get("kind") or kind, "apiVersion": obj.get("apiVersion") or api_version,
                "name": meta.get("name", "")}
    for field in ("namespace", "uid", "resourceVersion"):
        if meta.get(field):
            ref[field] = meta[field]
    return ref


def make_event(ref: Obj, event_type: str, reason: str, message: str, component: str, host: str,
               now: dt.datetime) -> Obj:
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    stamp = format_time(now)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": f"{ref['name']}.{time.time_ns():x}", "namespace": ref.get("namespace") or "default"},
        "involvedObject": ref, "reason": reason, "message": message, "source": source, "type": event_type,
        "count": 1, "firstTimestamp": stamp, "lastTimestamp": stamp, "eventTime": None,
        "reportingComponent": component, "reportingInstance": host,
    }


class EventRecorder:
    def __init__(self, client: Client, component: str, host: str = "",
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self.client, self.component, self.host, self.clock = client, component, host, clock
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int]] = OrderedDict()

    async def event(self, obj: Obj, kind: str, event_type: str, reason: str, message: str) -> None:
        ref = involved_object(obj, kind)
        ns = ref.get("namespace") or "default"
        key = (ns, ref["kind"], ref["name"], str(ref.get("uid", "")), event_type, reason, message)
        now = self.clock()
        try:
            if key in self._seen:
                name, _, count = self._seen[key]
                try:
                    await self.client.patch("events", name, {"count": count + 1, "lastTimestamp": format_time(now)},
                                            namespace=ns)
                    self._remember(key, name, ns, count + 1)
                    return
                except ClientError as exc:
                    if exc.code != 404:
                        raise
            body = make_event(ref, event_type, reason, message, self.component, self.host, now)
            created = await self.client.create("events", body, namespace=ns)
            self._remember(key, created["metadata"]["name"], ns, 1)
        except Exception as exc:  # ClientError, connection errors: events are best effort (rule 4)
            log.warning("event %s %s on %s %s/%s dropped: %s", event_type, reason, ref["kind"], ns,
                        ref["name"], exc)

    def _remember(self, key: tuple[str, ...], name: str, ns: str, count: int) -> None:
        self._seen[key] = (name, ns, count)
        self._seen.move_to_end(key)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)

