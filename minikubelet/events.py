"""Events the kubelet records about pods (what ``kubectl describe pod`` lists under Events).

Reasons as the real kubelet writes them (pkg/kubelet/events): Created, Started, Killing (Normal);
BackOff, Failed (Warning). A core/v1 Event per occurrence, ``source.component: kubelet``, ``host``
and ``reportingInstance`` the node. Best effort: a failed write is logged, never retried.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import time
from collections.abc import Mapping
from typing import Any

import aiohttp

from miniapi.client import ClientError, KubeClient

log = logging.getLogger("minikubelet.events")


def event_object(pod: Mapping[str, Any], container: str, type_: str, reason: str, message: str, node: str,
                 now: float) -> dict[str, Any]:
    meta = pod.get("metadata") or {}
    ts = dt.datetime.fromtimestamp(int(now), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    involved: dict[str, Any] = {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                                "uid": meta.get("uid", ""), "apiVersion": "v1",
                                "resourceVersion": meta.get("resourceVersion", "")}
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta.get('name', '')}.{secrets.token_hex(8)}",
                         "namespace": meta.get("namespace", "")},
            "involvedObject": involved, "reason": reason, "message": message, "type": type_,
            "source": {"component": "kubelet", "host": node}, "firstTimestamp": ts, "lastTimestamp": ts,
            "count": 1, "reportingComponent": "kubelet", "reportingInstance": node}


class Recorder:
    def __init__(self, client: KubeClient, node: str) -> None:
        self.client, self.node = client, node
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, pod: Mapping[str, Any], container: str, type_: str, reason: str, message: str) -> None:
        obj = event_object(pod, container, type_, reason, message, self.node, time.time())
        task = asyncio.ensure_future(self._send(obj))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, obj: dict[str, Any]) -> None:
        try:
            await self.client.create("events", obj, obj["metadata"]["namespace"])
        except (ClientError, aiohttp.ClientError, OSError, TimeoutError) as e:
            log.debug("event %s dropped: %s", obj["reason"], e)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
