"""endpoint: keep the Endpoints object of every Service with a selector listing the pods behind it
(pkg/controller/endpoint/endpoints_controller.go). Service proxies and kube-proxy read these.

Rules (:func:`subsets` and :func:`desired` are pure):

1. A Service is synced when it is added, changed or deleted, and when a pod matching its selector
   (before or after the change) is added, changed or deleted. At start-up every existing Endpoints is
   synced too (checkLeftoverEndpoints), so one whose Service went away meanwhile is deleted.
2. Service gone: delete its Endpoints (404 is fine). Type ExternalName, or no ``spec.selector``: left
   alone; such Endpoints are written by hand (``default/kubernetes`` is the apiserver's).
3. A pod counts if it matches the selector, is not Succeeded/Failed, has a ``status.podIP`` and is
   not terminating (unless ``publishNotReadyAddresses``). Its address::

       {"ip": "10.244.1.2", "nodeName": "node1",
        "targetRef": {"kind": "Pod", "namespace": "default", "name": "web-1", "uid": "..."}}

   (plus ``hostname`` when the pod's ``hostname`` is set and its ``subdomain`` is the Service).
   Ready pods (condition Ready=True, or any with ``publishNotReadyAddresses``) go in ``addresses``,
   the others in ``notReadyAddresses``.
4. Ports: per service port, ``{name, port, protocol}`` with ``port`` the ``targetPort`` resolved on
   the pod: a number as is, a name looked up in the pod's container ports of the same protocol
   (a pod without it is left out for that port). A headless Service without ports lists addresses
   with no ports.
5. Subsets are repacked (RepackSubsets): one subset per distinct set of addresses, carrying every
   port those addresses share. Addresses are sorted by IP (as strings) then pod uid; ports by
   (name, port, protocol) and subsets by their first address: kube sorts the last two by a hash,
   so only the grouping, not that order, matches a real cluster.
6. Labels are the Service's, plus ``service.kubernetes.io/headless: ""`` without a ClusterIP.
   Nothing is written when subsets and labels are already right. The annotation
   ``endpoints.kubernetes.io/last-change-trigger-time`` carries the earliest change that led to the
   write (the Service's creation for a new Service, else the pods' Ready transitions since the last
   sync) and is dropped when there is none (TriggerTimeTracker).
7. Create when missing, else PUT with the cached resourceVersion (a 409 is retried). A failure
   records a ``FailedToCreateEndpoint`` / ``FailedToUpdateEndpoint`` Warning on the Service.

Example (Service ``web``, selector ``app: web``, port 80 -> targetPort ``http``; two ready pods)::

    subsets:
    - addresses: [{ip: 10.244.1.2, nodeName: node1, targetRef: {kind: Pod, name: web-1, ...}},
                  {ip: 10.244.1.3, nodeName: node1, targetRef: {kind: Pod, name: web-2, ...}}]
      ports: [{port: 8080, protocol: TCP}]
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

from miniapi.client import ClientError
from miniapi.controllermanager.base import ControllerContext, Obj, is_true, key_of, parse_time, split_key
from miniapi.controllermanager.events import WARNING
from miniapi.controllermanager.workqueue import WorkQueue, process

log = logging.getLogger("miniapi.controllermanager.endpoints")

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


def selector_of(service: Obj) -> dict[str, str] | None:
    """Rule 2: the selector, or None for services this controller leaves alone."""
    spec = service.get("spec") or {}
    selector = spec.get("selector")
    if spec.get("type") == "ExternalName" or not isinstance(selector, dict) or not selector:
        return None
    return {str(k): str(v) for k, v in selector.items()}


def matches(selector: dict[str, str], pod: Obj) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in selector.items())


def in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    """Rule 3 (ShouldPodBeInEndpoints)."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed") or not (status.get("podIP") or status.get("podIPs")):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def find_port(pod: Obj, service_port: Obj) -> int | None:
    """Rule 4 (podutil.FindPort)."""
    target = service_port.get("targetPort", service_port.get("port"))
    if isinstance(target, int) and not isinstance(target, bool):
        return target
    protocol = service_port.get("protocol") or "TCP"
    for container in (pod.get("spec") or {}).get("containers") or ():
        for port in container.get("ports") or ():
            if port.get("name") == target and (port.get("protocol") or "TCP") == protocol:
                return int(port["containerPort"])
    return None


def address(pod: Obj, service: Obj) -> Obj:
    """Rule 3's address."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    out: Obj = {"ip": (pod.get("status") or {}).get("podIP", ""), "nodeName": spec.get("nodeName", ""),
                "targetRef": {"kind": "Pod", "namespace": meta.get("namespace", ""), "name": meta.get("name", ""),
                              "uid": meta.get("uid", "")}}
    svc_meta = service.get("metadata") or {}
    if spec.get("hostname") and spec.get("subdomain") == svc_meta.get("name") and \
            meta.get("namespace") == svc_meta.get("namespace"):
        out["hostname"] = spec["hostname"]
    return out


def _port(service_port: Obj, number: int) -> Obj:
    out: Obj = {"port": number, "protocol": service_port.get("protocol") or "TCP"}
    if service_port.get("name"):
        out["name"] = service_port["name"]
    if service_port.get("appProtocol"):
        out["appProtocol"] = service_port["appProtocol"]
    return out


def _hashable(obj: Obj) -> tuple[Any, ...]:
    return tuple(sorted((k, _hashable(v) if isinstance(v, dict) else v) for k, v in obj.items()))


def subsets(service: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """Rules 3-5: the Endpoints subsets for ``service`` given the pods of its namespace."""
    spec = service.get("spec") or {}
    selector = selector_of(service) or {}
    tolerate = bool(spec.get("publishNotReadyAddresses"))
    headless_no_ports = not spec.get("ports") and spec.get("clusterIP") == "None"
    addrs: dict[tuple[Any, ...], Obj] = {}
    by_port: dict[tuple[Any, ...], dict[tuple[Any, ...], bool]] = {}  # port -> address -> ready
    ports: dict[tuple[Any, ...], Obj | None] = {}
    for pod in pods:
        if not matches(selector, pod) or not in_endpoints(pod, tolerate):
            continue
        addr = address(pod, service)
        akey = (addr["ip"], addr["targetRef"]["uid"])
        ready = tolerate or is_true(pod, "Ready")
        pod_ports: list[Obj | None] = [None] if headless_no_ports else []
        for sp in spec.get("ports") or ():
            number = find_port(pod, sp)
            if number is None:
                log.debug("no suitable port %s for pod %s", sp.get("targetPort"), key_of(pod))
                continue
            pod_ports.append(_port(sp, number))
        for port in pod_ports:
            pkey = _hashable(port) if port else ()
            addrs.setdefault(akey, addr)
            ports[pkey] = port
            seen = by_port.setdefault(pkey, {})
            seen[akey] = seen.get(akey, False) or ready
    groups: dict[frozenset[tuple[Any, ...]], list[Obj]] = {}
    for pkey, ready_by_addr in by_port.items():
        group = groups.setdefault(frozenset(ready_by_addr.items()), [])
        port = ports[pkey]
        if port is not None:
            group.append(port)
    out = []
    for members, group_ports in groups.items():
        subset: Obj = {}
        for field, want in (("addresses", True), ("notReadyAddresses", False)):
            chosen = sorted((k for k, ready in members if ready is want))
            if chosen:
                subset[field] = [copy.deepcopy(addrs[k]) for k in chosen]
        if group_ports:
            subset["ports"] = sorted(group_ports, key=lambda p: (p.get("name", ""), p["port"], p["protocol"]))
        out.append(subset)
    return sorted(out, key=lambda s: [(a["ip"], a["targetRef"]["uid"])
                                      for a in s.get("addresses", []) + s.get("notReadyAddresses", [])])


def labels_for(service: Obj) -> dict[str, str]:
    """Rule 6's labels."""
    labels = dict((service.get("metadata") or {}).get("labels") or {})
    if (service.get("spec") or {}).get("clusterIP") in (None, "", "None"):
        labels[HEADLESS_LABEL] = ""
    else:
        labels.pop(HEADLESS_LABEL, None)
    return labels


def desired(service: Obj, pods: Iterable[Obj], current: Obj | None, trigger: str = "") -> Obj | None:
    """Rules 6-7: the Endpoints to create or PUT, or None when ``current`` is already right."""
    new_subsets = subsets(service, pods)
    labels = labels_for(service)
    if current is not None:
        have = {k: v for k, v in ((current.get("metadata") or {}).get("labels") or {}).items() if k != HEADLESS_LABEL}
        if (current.get("subsets") or []) == new_subsets and \
                have == ((service.get("metadata") or {}).get("labels") or {}):
            return None
    meta = service.get("metadata") or {}
    out: Obj = copy.deepcopy(current) if current is not None else {
        "metadata": {"name": meta.get("name", ""), "namespace": meta.get("namespace", "")}}
    out["apiVersion"], out["kind"] = "v1", "Endpoints"
    out_meta: Obj = out.setdefault("metadata", {})
    out_meta["labels"] = labels
    annotations = dict(out_meta.get("annotations") or {})
    if trigger:
        annotations[TRIGGER_TIME] = trigger
    else:
        annotations.pop(TRIGGER_TIME, None)
    out_meta["annotations"] = annotations
    if new_subsets:
        out["subsets"] = new_subsets
    else:
        out.pop("subsets", None)
    return out


class TriggerTimeTracker:
    """Rule 6's annotation (pkg/controller/util/endpoint/trigger_time_tracker.go)."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[dict[str, str], str]] = {}  # key -> (pod name -> Ready time, svc time)

    def compute(self, key: str, service: Obj, pods: Iterable[Obj]) -> str:
        known = key in self._state
        last_pods, last_service = self._state.get(key, ({}, ""))
        changed: list[tuple[dt.datetime, str]] = []
        pod_times = {}
        for pod in pods:
            ready = next((c for c in (pod.get("status") or {}).get("conditions") or () if c.get("type") == "Ready"),
                         None)
            stamp = str((ready or {}).get("lastTransitionTime") or "")
            if stamp:
                name = str((pod.get("metadata") or {}).get("name", ""))
                pod_times[name] = stamp
                _if_after(changed, stamp, last_pods.get(name, ""))
        created = str((service.get("metadata") or {}).get("creationTimestamp") or "")
        _if_after(changed, created, last_service)
        self._state[key] = (pod_times, created)
        if not known:
            return created
        return min(changed)[1] if changed else ""

    def forget(self, key: str) -> None:
        self._state.pop(key, None)


def _if_after(changed: list[tuple[dt.datetime, str]], stamp: str, last: str) -> None:
    """Remember ``stamp`` as a change if it is later than ``last``."""
    t, before = parse_time(stamp), parse_time(last)
    if t is not None and (before is None or t > before):
        changed.append((t, stamp))


class EndpointController:
    name = "endpoint"

    def __init__(self, ctx: ControllerContext) -> None:
        self.client = ctx.client
        self.services = ctx.informers.get("services")
        self.pods = ctx.informers.get("pods")
        self.endpoints = ctx.informers.get("endpoints")
        self.recorder = ctx.recorder("endpoint-controller")
        self.queue = WorkQueue(self.name)
        self.triggers = TriggerTimeTracker()
        self.services.add_handlers(on_add=self._enqueue, on_update=lambda old, new: self._enqueue(new),
                                   on_delete=self._enqueue)
        self.pods.add_handlers(on_add=self._pod_changed, on_update=self._pod_changed_from,
                               on_delete=self._pod_changed)
        self.endpoints.add_handlers(on_delete=self._endpoints_deleted)

    def _enqueue(self, obj: Obj) -> None:
        self.queue.add(key_of(obj))

    def _services_of(self, pod: Obj) -> list[str]:
        ns = (pod.get("metadata") or {}).get("namespace")
        return [key_of(s) for s in self.services.items() if (s.get("metadata") or {}).get("namespace") == ns
                and (sel := selector_of(s)) is not None and matches(sel, pod)]

    def _pod_changed(self, pod: Obj) -> None:
        for key in self._services_of(pod):
            self.queue.add(key)

    def _pod_changed_from(self, old: Obj, new: Obj) -> None:
        for key in {*self._services_of(old), *self._services_of(new)}:
            self.queue.add(key)

    def _endpoints_deleted(self, ep: Obj) -> None:
        if self.services.get(key_of(ep)) is not None:
            self.queue.add(key_of(ep))

    async def run(self) -> None:
        for informer in (self.services, self.pods, self.endpoints):
            await informer.synced()
        for ep in self.endpoints.items():  # checkLeftoverEndpoints (rule 1)
            if LEADER_ANNOTATION not in ((ep.get("metadata") or {}).get("annotations") or {}):
                self.queue.add(key_of(ep))
        await process(self.queue, self.sync)

    async def sync(self, key: str) -> None:
        namespace, name = split_key(key)
        service = self.services.get(key)
        if service is None:
            try:
                await self.client.delete("endpoints", name, namespace)
                log.info("endpoints %s deleted: its service is gone", key)
            except ClientError as exc:
                if exc.code != 404:
                    raise
            self.triggers.forget(key)
            return
        selector = selector_of(service)
        if selector is None:
            return
        pods = [p for p in self.pods.items() if (p.get("metadata") or {}).get("namespace") == namespace
                and matches(selector, p)]
        trigger = self.triggers.compute(key, service, pods)
        current = self.endpoints.get(key)
        new = desired(service, pods, current, trigger)
        if new is None:
            return
        verb = "create" if current is None else "update"
        try:
            if current is None:
                await self.client.create("endpoints", new, namespace=namespace)
            else:
                await self.client.update("endpoints", new, namespace=namespace)
        except ClientError as exc:
            if exc.code != 409 and not (exc.code in (403, 404) and current is None):
                await self.recorder.event(service, "Service", WARNING, f"FailedTo{verb.capitalize()}Endpoint",
                                          f"Failed to {verb} endpoint for service {key}: {exc.message}")
            raise
        ready = sum(len(s.get("addresses") or ()) for s in new.get("subsets") or ())
        log.info("endpoints %s %sd: %d ready address(es)", key, verb, ready)
