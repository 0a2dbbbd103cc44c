"""A container's command line and environment, made as the kubelet makes them (kubelet_pods.go
makeEnvironmentVariables, third_party/forked/golang/expansion).

1. Base: ``PATH`` (the usual image default), ``HOSTNAME`` (the pod name) and ``HOME`` (the pod's
   work directory: there is no image filesystem, so ``~`` should not be the kubelet's).
2. ``envFrom`` sources in order (Secret / ConfigMap keys, with an optional ``prefix``), then ``env``
   entries in order; a later name overrides an earlier one.
3. ``env[].value`` may reference earlier variables as ``$(NAME)``; ``$$`` is a literal ``$``; an
   unknown ``$(NAME)`` stays as written. ``command`` and ``args`` are expanded with the final env.
4. ``valueFrom``: ``fieldRef`` (metadata.name/namespace/uid, metadata.labels['k'],
   metadata.annotations['k'], spec.nodeName, spec.serviceAccountName, status.hostIP(s),
   status.podIP(s)), ``resourceFieldRef`` (the container's own requests/limits), ``secretKeyRef`` and
   ``configMapKeyRef`` (read from the apiserver with the node's credentials; the Node authorizer
   allows exactly the objects a pod on this node references).
5. A missing object or key, unless ``optional: true``, is a :class:`ContainerConfigError`: the
   container waits with ``CreateContainerConfigError`` and the message the real kubelet writes.
6. Service links (getServiceEnvVarMap, pkg/kubelet/envvars): for ``default/kubernetes`` always, and
   with ``enableServiceLinks`` (default true) for every service of the pod's namespace that has a
   ClusterIP, Docker-link style variables, e.g. for ClusterIP 10.96.0.1, port 443 named ``https``::

       KUBERNETES_SERVICE_HOST=10.96.0.1      KUBERNETES_SERVICE_PORT=443
       KUBERNETES_SERVICE_PORT_HTTPS=443      KUBERNETES_PORT=tcp://10.96.0.1:443
       KUBERNETES_PORT_443_TCP=tcp://10.96.0.1:443          KUBERNETES_PORT_443_TCP_PROTO=tcp
       KUBERNETES_PORT_443_TCP_PORT=443       KUBERNETES_PORT_443_TCP_ADDR=10.96.0.1

   They may be referenced as ``$(VAR)`` in ``env`` values; the container's own variables win.
"""

from __future__ import annotations

import base64
import re
from collections import ChainMap
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
Fetch = Callable[[str, str, str], Awaitable[dict[str, Any] | None]]  # (resource, namespace, name) -> obj
_FIELD_SUBSCRIPT = re.compile(r"metadata\.(labels|annotations)\['(.*)'\]$")


class ContainerConfigError(Exception):
    """The container's configuration cannot be made (CreateContainerConfigError)."""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion (see rule 3)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def command_line(container: Mapping[str, Any], env: Mapping[str, str]) -> list[str]:
    """command + args, expanded; args alone are the command line (an image without ENTRYPOINT)."""
    parts = [str(p) for p in (container.get("command") or [])] + [str(p) for p in (container.get("args") or [])]
    return [expand(p, env) for p in parts]


def field_value(pod: Mapping[str, Any], path: str, host_ip: str, pod_ip: str) -> str:
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    m = _FIELD_SUBSCRIPT.match(path)
    if m:
        return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
    simple = {
        "metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"), "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": host_ip, "status.hostIPs": host_ip, "status.podIP": pod_ip, "status.podIPs": pod_ip,
    }
    if path not in simple:
        raise ContainerConfigError(f"unsupported fieldRef fieldPath {path!r}")
    return str(simple[path] or "")


def resource_value(container: Mapping[str, Any], resource: str) -> str:
    kind, _, name = resource.partition(".")
    res = container.get("resources") or {}
    value = (res.get(kind) or {}).get(name)
    if value is None and kind == "requests":  # requests default to limits
        value = (res.get("limits") or {}).get(name)
    return str(value) if value is not None else "0"


async def _key_ref(fetch: Fetch, resource: str, kind: str, namespace: str, ref: Mapping[str, Any]) -> str | None:
    name, key, optional = str(ref.get("name", "")), str(ref.get("key", "")), bool(ref.get("optional"))
    obj = await fetch(resource, namespace, name)
    if obj is None:
        if optional:
            return None
        raise ContainerConfigError(f'{kind.lower()} "{name}" not found')
    value = _data(obj, resource).get(key)
    if value is None:
        if optional:
            return None
        raise ContainerConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return value


def _data(obj: Mapping[str, Any], resource: str) -> dict[str, str]:
    if resource == "secrets":
        out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
        out.update({k: str(v) for k, v in (obj.get("stringData") or {}).items()})
        return out
    return {k: str(v) for k, v in (obj.get("data") or {}).items()}


def _env_name(name: str) -> str:
    return name.replace("-", "_").upper()


def service_links(service: Mapping[str, Any]) -> dict[str, str]:
    """envvars.FromServices for one service (rule 6); nothing without a ClusterIP or ports."""
    spec = service.get("spec") or {}
    ip, ports = str(spec.get("clusterIP") or ""), [p for p in spec.get("ports") or () if isinstance(p, dict)]
    if ip in ("", "None") or not ports:
        return {}
    prefix = _env_name(str((service.get("metadata") or {}).get("name", "")))
    host = f"[{ip}]" if ":" in ip else ip
    out = {f"{prefix}_SERVICE_HOST": ip, f"{prefix}_SERVICE_PORT": str(ports[0].get("port"))}
    for p in ports:
        if p.get("name"):
            out[f"{prefix}_SERVICE_PORT_{_env_name(str(p['name']))}"] = str(p.get("port"))
    for i, p in enumerate(ports):
        proto = str(p.get("protocol") or "TCP")
        url = f"{proto.lower()}://{host}:{p.get('port')}"
        if i == 0:
            out[f"{prefix}_PORT"] = url
        port_prefix = f"{prefix}_PORT_{p.get('port')}_{proto.upper()}"
        out.update({port_prefix: url, f"{port_prefix}_PROTO": proto.lower(), f"{port_prefix}_PORT": str(p.get("port")),
                    f"{port_prefix}_ADDR": ip})
    return out


def service_env(services: Iterable[Mapping[str, Any]], namespace: str, enable_service_links: bool) -> dict[str, str]:
    """getServiceEnvVarMap (rule 6): the master service ``default/kubernetes`` and, with service links,
    the services of ``namespace``."""
    chosen: dict[str, Mapping[str, Any]] = {}
    for svc in services:
        meta = svc.get("metadata") or {}
        name, ns = str(meta.get("name", "")), meta.get("namespace")
        if str((svc.get("spec") or {}).get("clusterIP") or "") in ("", "None"):
            continue
        if ns == "default" and name == "kubernetes":
            chosen.setdefault(name, svc)
        elif ns == namespace and enable_service_links:
            chosen[name] = svc
    out: dict[str, str] = {}
    for svc in chosen.values():
        out.update(service_links(svc))
    return out


async def container_env(pod: Mapping[str, Any], container: Mapping[str, Any], *, host_ip: str, pod_ip: str,
                        workdir: str, fetch: Fetch, services: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of one container (rules 1-6; ``services`` from :func:`service_env`); raises
    ContainerConfigError."""
    services = services or {}
    namespace = str((pod.get("metadata") or {}).get("namespace", ""))
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": str((pod.get("metadata") or {}).get("name", "")), "HOME": workdir}
    for source in container.get("envFrom") or ():
        prefix = str(source.get("prefix", ""))
        for field, resource, kind in (("secretRef", "secrets", "Secret"), ("configMapRef", "configmaps", "ConfigMap")):
            ref = source.get(field)
            if not ref:
                continue
            obj = await fetch(resource, namespace, str(ref.get("name", "")))
            if obj is None:
                if ref.get("optional"):
                    continue
                raise ContainerConfigError(f'{kind.lower()} "{ref.get("name", "")}" not found')
            env.update({prefix + k: v for k, v in _data(obj, resource).items()})
    for item in container.get("env") or ():
        name = str(item.get("name", ""))
        source = item.get("valueFrom")
        if not source:
            env[name] = expand(str(item.get("value", "")), ChainMap(env, dict(services)))
            continue
        value: str | None
        if "fieldRef" in source:
            value = field_value(pod, str(source["fieldRef"].get("fieldPath", "")), host_ip, pod_ip)
        elif "resourceFieldRef" in source:
            value = resource_value(container, str(source["resourceFieldRef"].get("resource", "")))
        elif "secretKeyRef" in source:
            value = await _key_ref(fetch, "secrets", "Secret", namespace, source["secretKeyRef"])
        elif "configMapKeyRef" in source:
            value = await _key_ref(fetch, "configmaps", "ConfigMap", namespace, source["configMapKeyRef"])
        else:
            raise ContainerConfigError(f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    for name, value in services.items():
        env.setdefault(name, value)
    return env
