"""Server-side printing: turn stored objects into a ``meta.k8s.io/v1`` Table for ``kubectl get``.

kubectl 1.37 has no client-side printers for built-in kinds; it sends
``Accept: application/json;as=Table;v=v1;g=meta.k8s.io,...`` (:func:`wants_table`) and prints the
cells verbatim (PROTOCOLS.md 1.2). Column sets and cell rules follow kubernetes
``pkg/printers/internalversion/printers.go``. Like the real apiserver we always compute the wide
columns (priority 1) and kubectl hides them unless ``-o wide``. Ages use :func:`human_duration`
(apimachinery ``pkg/util/duration.HumanDuration``). Kinds without a printer (roles, clusterroles,
the review kinds) get the apiserver's default table, ``NAME  CREATED AT``.

A Table on the wire::

    {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": "100"},
     "columnDefinitions": [{"name": "Name", "type": "string", "format": "name",
                            "description": "...", "priority": 0}, ...],
     "rows": [{"cells": ["p1", "1/1", "Running", "0", "5m"],
               "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                          "metadata": {"name": "p1", "namespace": "default", ...}}}]}

Watch streams carry ``columnDefinitions`` only in the first event (``with_headers=False`` after).
Where the real apiserver's defaulting would have filled a field (Service ``type``, port
``protocol``, Secret ``type``, Namespace ``phase``) the printer assumes that default.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from miniapi.discovery import parse_accept
from miniapi.errors import bad_request
from miniapi.resources import ResourceType

Obj = Mapping[str, Any]
CellsFn = Callable[[Obj, datetime], list[Any]]
INCLUDE_OBJECT = ("None", "Metadata", "Object")


def wants_table(accept_header: str | None) -> bool:
    """True if the Accept header asks for ``as=Table`` in ``meta.k8s.io`` v1 or v1beta1."""
    return any(mr.type == "application/json" and mr.params.get("as") == "Table"
               and mr.params.get("g") == "meta.k8s.io" and mr.params.get("v") in ("v1", "v1beta1")
               for mr in parse_accept(accept_header))


def table_include_object(query: Mapping[str, str]) -> str:
    """``?includeObject=`` -> "None" | "Metadata" (the default; kubectl sends none) | "Object"."""
    value = query.get("includeObject", "") or "Metadata"
    if value not in INCLUDE_OBJECT:
        raise bad_request(f'unrecognized includeObject value: "{value}"')
    return value


# --- time --------------------------------------------------------------------------------------------

def human_duration(d: timedelta) -> str:
    """apimachinery ``duration.HumanDuration``: ~2-3 significant figures ("90s", "3m20s", "2d3h")."""
    seconds = int(d.total_seconds())
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m" if seconds % 60 == 0 else f"{minutes}m{seconds % 60}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        return f"{hours}h" if minutes % 60 == 0 else f"{hours}h{minutes % 60}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        return f"{hours // 24}d" if hours % 24 == 0 else f"{hours // 24}d{hours % 24}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        years, days = hours // 24 // 365, (hours // 24) % 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def parse_time(value: Any) -> datetime | None:
    """RFC 3339 (``2026-01-01T00:00:00Z``, fraction optional) -> aware datetime; None if unset."""
    if not value or not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def since(value: Any, now: datetime) -> str:
    """``translateTimestampSince``: "<unknown>" for an unset timestamp, else its age."""
    t = parse_time(value)
    return "<unknown>" if t is None else human_duration(now - t)


# --- small helpers -------------------------------------------------------------------------------------

def _m(obj: Obj, key: str) -> Mapping[str, Any]:
    return obj.get(key) or {}


def _name(obj: Obj) -> str:
    return str(_m(obj, "metadata").get("name", ""))


def _age(obj: Obj, now: datetime) -> str:
    return since(_m(obj, "metadata").get("creationTimestamp"), now)


def format_labels(labels: Mapping[str, str] | None) -> str:
    """labels.FormatLabels: ``a=1,b=2`` sorted by key, ``<none>`` when empty."""
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or "<none>"


def _join_host_port(host: str, port: Any) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --- pods ----------------------------------------------------------------------------------------------

def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if b is not None and (a is None or a < b) else a


def _last_termination(cs: Obj) -> datetime | None:
    term = _m(cs, "lastState").get("terminated")
    return parse_time(term.get("finishedAt")) if term is not None else None


def _condition(status: Obj, ctype: str) -> str | None:
    return next((c.get("status") for c in status.get("conditions") or [] if c.get("type") == ctype), None)


def _exit_reason(term: Obj, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + str(term["reason"])
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


@dataclass
class _PodState:
    reason: str
    ready: int = 0
    restarts: int = 0
    last_restart: datetime | None = None


def _init_containers(spec: Obj, status: Obj, st: _PodState) -> tuple[bool, int, datetime | None]:
    """Walk init container statuses; returns (initializing, sidecar restarts, last sidecar restart)."""
    inits = spec.get("initContainers") or []
    sidecars = {c.get("name") for c in inits if c.get("restartPolicy") == "Always"}
    side_restarts, side_last = 0, None
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        st.restarts += cs.get("restartCount", 0)
        st.last_restart = _later(st.last_restart, _last_termination(cs))
        sidecar = cs.get("name") in sidecars
        if sidecar:
            side_restarts += cs.get("restartCount", 0)
            side_last = _later(side_last, _last_termination(cs))
        state = _m(cs, "state")
        term, waiting = state.get("terminated"), state.get("waiting")
        if term is not None and term.get("exitCode", 0) == 0:
            continue
        if sidecar and cs.get("started"):
            st.ready += 1 if cs.get("ready") else 0
            continue
        if term is not None:
            st.reason = _exit_reason(term, "Init:")
        elif waiting is not None and waiting.get("reason") and waiting["reason"] != "PodInitializing":
            st.reason = "Init:" + waiting["reason"]
        else:
            st.reason = f"Init:{i}/{len(inits)}"
        return True, side_restarts, side_last
    return False, side_restarts, side_last


def _containers(status: Obj, st: _PodState) -> None:
    has_running = False
    for cs in reversed(status.get("containerStatuses") or []):
        st.restarts += cs.get("restartCount", 0)
        st.last_restart = _later(st.last_restart, _last_termination(cs))
        state = _m(cs, "state")
        term, waiting = state.get("terminated"), state.get("waiting")
        if waiting is not None and waiting.get("reason"):
            st.reason = waiting["reason"]
        elif term is not None:
            st.reason = _exit_reason(term)
        elif cs.get("ready") and state.get("running") is not None:
            has_running = True
            st.ready += 1
    if st.reason == "Completed" and has_running:
        st.reason = "Running" if _condition(status, "Ready") == "True" else "NotReady"


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    meta, spec, status = _m(pod, "metadata"), _m(pod, "spec"), _m(pod, "status")
    phase = status.get("phase") or ""
    st = _PodState(reason=status.get("reason") or phase)
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        st.reason = "SchedulingGated"
    total = len(spec.get("containers") or []) + sum(
        1 for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always")
    initializing, side_restarts, side_last = _init_containers(spec, status, st)
    if not initializing or _condition(status, "Initialized") == "True":
        st.restarts, st.last_restart = side_restarts, side_last
        _containers(status, st)
    if meta.get("deletionTimestamp") and status.get("reason") == "NodeLost":
        st.reason = "Unknown"
    elif meta.get("deletionTimestamp") and phase not in ("Succeeded", "Failed"):
        st.reason = "Terminating"
    restarts = str(st.restarts)
    if st.restarts and st.last_restart is not None:
        restarts = f"{st.restarts} ({human_duration(now - st.last_restart)} ago)"
    ips = status.get("podIPs") or []
    ip = (ips[0].get("ip") if ips else status.get("podIP")) or "<none>"
    gates = spec.get("readinessGates") or []
    gates_cell = "<none>"
    if gates:
        ok = sum(1 for g in gates if _condition(status, g.get("conditionType", "")) == "True")
        gates_cell = f"{ok}/{len(gates)}"
    return [_name(pod), f"{st.ready}/{total}", st.reason, restarts, _age(pod, now),
            ip, spec.get("nodeName") or "<none>", status.get("nominatedNodeName") or "<none>", gates_cell]


# --- nodes, services, endpoints --------------------------------------------------------------------------

def _node_cells(node: Obj, now: datetime) -> list[Any]:
    spec, status = _m(node, "spec"), _m(node, "status")
    conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    states = [] if "Ready" not in conds else ["Ready" if conds["Ready"] == "True" else "NotReady"]
    states = states or ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    roles: set[str] = set()
    for k, v in (_m(node, "metadata").get("labels") or {}).items():
        if k.startswith("node-role.kubernetes.io/") and k[len("node-role.kubernetes.io/"):]:
            roles.add(k[len("node-role.kubernetes.io/"):])
        elif k == "kubernetes.io/role" and v:
            roles.add(v)
    info = _m(status, "nodeInfo")
    addrs = status.get("addresses") or []

    def addr(kind: str) -> str:
        return next((a.get("address", "") for a in addrs if a.get("type") == kind), "<none>")

    return [_name(node), ",".join(states), ",".join(sorted(roles)) or "<none>", _age(node, now),
            info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
            info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
            info.get("containerRuntimeVersion") or "<unknown>"]


def _service_external_ip(spec: Obj, status: Obj) -> str:
    kind, external = spec.get("type") or "ClusterIP", list(spec.get("externalIPs") or [])
    if kind in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if kind == "LoadBalancer":
        ingress = _m(status, "loadBalancer").get("ingress") or []
        lb = sorted({i.get("ip") or i.get("hostname") for i in ingress} - {None, ""})
        return ",".join(lb + external) or "<pending>"
    if kind == "ExternalName":
        return str(spec.get("externalName", ""))
    return "<unknown>"


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec = _m(svc, "spec")
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ports = []
    for p in spec.get("ports") or []:
        proto = p.get("protocol") or "TCP"
        node_port = p.get("nodePort") or 0
        ports.append(f"{p.get('port')}:{node_port}/{proto}" if node_port > 0 else f"{p.get('port')}/{proto}")
    return [_name(svc), spec.get("type") or "ClusterIP", ips[0] if ips else "<none>",
            _service_external_ip(spec, _m(svc, "status")), ",".join(ports) or "<none>",
            _age(svc, now), format_labels(spec.get("selector"))]


def format_endpoints(endpoints: Obj, limit: int = 3) -> str:
    """``10.0.0.1:80,10.0.0.2:80 + 3 more...``; ``<none>`` without subsets."""
    subsets = endpoints.get("subsets") or []
    if not subsets:
        return "<none>"
    shown: list[str] = []
    count = 0
    for ss in subsets:
        addresses = [a.get("ip", "") for a in ss.get("addresses") or []]
        for port in ss.get("ports") or [None]:  # a headless service may have no ports
            count += len(addresses)
            for ip in addresses:
                if len(shown) == limit:
                    break
                shown.append(ip if port is None else _join_host_port(ip, port.get("port")))
    more = count > len(shown)
    return f"{','.join(shown)} + {count - limit} more..." if more else ",".join(shown)


# --- everything else -----------------------------------------------------------------------------------

def _event_cells(ev: Obj, now: datetime) -> list[Any]:
    first = since(ev.get("firstTimestamp"), now) if ev.get("firstTimestamp") else \
        since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    if ev.get("series"):
        last, count = since(ev["series"].get("lastObservedTime"), now), ev["series"].get("count", 0)
    elif count == 0:
        count = 1  # singleton events have no count in the events.k8s.io API
    inv, src = _m(ev, "involvedObject"), _m(ev, "source")
    kind = str(inv.get("kind", "")).lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    component = src.get("component") or ev.get("reportingController") or ""
    host = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {host}" if host else component
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""), source,
            str(ev.get("message", "")).strip(), first, count, _name(ev)]


def _binding_cells(rb: Obj, now: datetime) -> list[Any]:
    ref, subjects = _m(rb, "roleRef"), rb.get("subjects") or []

    def of(kind: str) -> str:
        return ", ".join((f"{s.get('namespace', '')}/{s.get('name', '')}" if kind == "ServiceAccount"
                          else s.get("name", "")) for s in subjects if s.get("kind") == kind)

    return [_name(rb), f"{ref.get('kind', '')}/{ref.get('name', '')}", _age(rb, now),
            of("User"), of("Group"), of("ServiceAccount")]


def csr_condition(csr: Obj) -> str:
    """``Approved,Issued`` / ``Denied`` / ``Pending`` (+``,Failed``), as printers.go extractCSRStatus."""
    status = _m(csr, "status")
    types = {c.get("type") for c in status.get("conditions") or []}
    out = "Denied" if "Denied" in types else "Approved" if "Approved" in types else "Pending"
    out += ",Failed" if "Failed" in types else ""
    return out + (",Issued" if status.get("certificate") else "")


def _csr_cells(csr: Obj, now: datetime) -> list[Any]:
    spec = _m(csr, "spec")
    secs = spec.get("expirationSeconds")
    duration = human_duration(timedelta(seconds=secs)) if secs is not None else "<none>"
    return [_name(csr), _age(csr, now), spec.get("signerName") or "<none>", spec.get("username", ""),
            duration, csr_condition(csr)]


def _created_at(obj: Obj, now: datetime) -> list[Any]:
    t = parse_time(_m(obj, "metadata").get("creationTimestamp"))
    return [_name(obj), t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if t else "0001-01-01T00:00:00Z"]


# --- columns -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Column:
    name: str
    description: str
    type: str = "string"
    priority: int = 0
    format: str = ""

    def definition(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


NAME = Column("Name", "Name must be unique within a namespace. Is required when creating resources, "
              "although some resources may allow a client to request the generation of an appropriate "
              "name automatically. Cannot be updated. More info: "
              "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
              format="name")
_CREATED = ("CreationTimestamp is a timestamp representing the server time when this object was created. "
            "It is represented in RFC3339 form and is in UTC.")
AGE = Column("Age", _CREATED)


def _cols(*spec: tuple[str, str] | tuple[str, str, int] | Column) -> tuple[Column, ...]:
    return tuple(c if isinstance(c, Column) else Column(c[0], c[1], priority=c[2] if len(c) > 2 else 0)
                 for c in spec)


_BINDING = _cols(NAME, ("Role", "RoleRef can reference a Role or a ClusterRole."), AGE,
                 ("Users", "Users in the roleBinding", 1), ("Groups", "Groups in the roleBinding", 1),
                 ("ServiceAccounts", "ServiceAccounts in the roleBinding", 1))

PRINTERS: dict[str, tuple[tuple[Column, ...], CellsFn]] = {
    "pods": (_cols(NAME, ("Ready", "The aggregate readiness state of this pod for accepting traffic."),
                   ("Status", "The aggregate status of the containers in this pod."),
                   ("Restarts", "The number of times the containers in this pod have been restarted "
                                "and when the last container in this pod has restarted."), AGE,
                   ("IP", "podIP address allocated to the pod.", 1),
                   ("Node", "NodeName is the node this pod is scheduled onto.", 1),
                   ("Nominated Node", "nominatedNodeName is set when this pod preempts other pods.", 1),
                   ("Readiness Gates", "If specified, all readiness gates will be evaluated.", 1)),
             _pod_cells),
    "nodes": (_cols(NAME, ("Status", "The status of the node"), ("Roles", "The roles of the node"), AGE,
                    ("Version", "Kubelet Version reported by the node."),
                    ("Internal-IP", "List of addresses reachable to the node.", 1),
                    ("External-IP", "List of addresses reachable to the node.", 1),
                    ("OS-Image", "OS Image reported by the node.", 1),
                    ("Kernel-Version", "Kernel Version reported by the node.", 1),
                    ("Container-Runtime", "ContainerRuntime Version reported by the node.", 1)),
              _node_cells),
    "namespaces": (_cols(NAME, ("Status", "The status of the namespace"), AGE),
                   lambda o, now: [_name(o), _m(o, "status").get("phase") or "Active", _age(o, now)]),
    "services": (_cols(NAME, ("Type", "type determines how the Service is exposed."),
                       ("Cluster-IP", "clusterIP is the IP address of the service."),
                       ("External-IP", "externalIPs is a list of IP addresses for which nodes in the "
                                       "cluster will also accept traffic for this service."),
                       ("Port(s)", "The list of ports that are exposed by this service."), AGE,
                       ("Selector", "Route service traffic to pods with label keys and values "
                                    "matching this selector.", 1)),
                 _service_cells),
    "endpoints": (_cols(NAME, ("Endpoints", "The set of all endpoints is the union of all subsets."), AGE),
                  lambda o, now: [_name(o), format_endpoints(o), _age(o, now)]),
    "serviceaccounts": (_cols(NAME, ("Secrets", "Secrets is a list of the secrets in the same namespace "
                                                "that pods running using this ServiceAccount are allowed "
                                                "to use."), AGE),
                        lambda o, now: [_name(o), len(o.get("secrets") or []), _age(o, now)]),
    "secrets": (_cols(NAME, ("Type", "Used to facilitate programmatic handling of secret data."),
                      ("Data", "Data contains the secret data."), AGE),
                lambda o, now: [_name(o), o.get("type") or "Opaque", len(o.get("data") or {}), _age(o, now)]),
    "configmaps": (_cols(NAME, ("Data", "Data contains the configuration data."), AGE),
                   lambda o, now: [_name(o), len(o.get("data") or {}) + len(o.get("binaryData") or {}),
                                   _age(o, now)]),
    "events": (_cols(("Last Seen", "The time at which the most recent occurrence of this event was "
                                   "recorded."),
                     ("Type", "Type of this event (Normal, Warning), new types could be added in the "
                              "future"),
                     ("Reason", "This should be a short, machine understandable string that gives the "
                                "reason for the transition into the object's current status."),
                     ("Object", "The object that this event is about."),
                     ("Subobject", "If the object reference is to a container, the path to it.", 1),
                     ("Source", "The component reporting this event.", 1),
                     ("Message", "A human-readable description of the status of this operation."),
                     ("First Seen", "The time at which the event was first recorded.", 1),
                     ("Count", "The number of times this event has occurred.", 1),
                     Column("Name", NAME.description, priority=1, format="name")),
               _event_cells),
    "certificatesigningrequests.certificates.k8s.io": (
        _cols(NAME, AGE, ("SignerName", "signerName indicates the requested signer."),
              ("Requestor", "username contains the name of the user that created the request."),
              ("RequestedDuration", "expirationSeconds is the requested duration of validity of the "
                                    "issued certificate."),
              ("Condition", "conditions applied to the request.")),
        _csr_cells),
    "rolebindings.rbac.authorization.k8s.io": (_BINDING, _binding_cells),
    "clusterrolebindings.rbac.authorization.k8s.io": (_BINDING, _binding_cells),
}
DEFAULT_PRINTER: tuple[tuple[Column, ...], CellsFn] = (
    (NAME, Column("Created At", _CREATED, type="date")), _created_at)


# --- the table -----------------------------------------------------------------------------------------

def column_definitions(resource_type: ResourceType) -> list[dict[str, Any]]:
    return [c.definition() for c in PRINTERS.get(resource_type.key, DEFAULT_PRINTER)[0]]


def _row_object(resource_type: ResourceType, obj: Obj, include_object: str) -> Any:
    if include_object == "None":
        return None
    if include_object == "Object":
        return {"kind": resource_type.kind, "apiVersion": resource_type.api_version, **obj}
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": dict(_m(obj, "metadata"))}


def _row_conditions(resource_type: ResourceType, obj: Obj) -> list[dict[str, str]]:
    phase = _m(obj, "status").get("phase") if resource_type.key == "pods" else None
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


def table_for(resource_type: ResourceType, objects: Sequence[Obj], now: datetime,
              include_object: str = "Metadata", *, with_headers: bool = True,
              list_metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A Table with one row per object. *now* is the clock ages are measured against;
    *list_metadata* (``resourceVersion``, ``continue``) is copied into the Table's metadata."""
    cells_of = PRINTERS.get(resource_type.key, DEFAULT_PRINTER)[1]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells_of(obj, now)}
        conditions = _row_conditions(resource_type, obj)
        if conditions:
            row["conditions"] = conditions
        row["object"] = _row_object(resource_type, obj, include_object)
        rows.append(row)
    table: dict[str, Any] = {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
                             "metadata": dict(list_metadata or {})}
    if with_headers:
        table["columnDefinitions"] = column_definitions(resource_type)
    table["rows"] = rows
    return table
