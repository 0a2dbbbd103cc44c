"""Pod volumes: the kubelet's volume manager for the volume kinds made from API objects, and the mounts
each container gets (pkg/kubelet/volumemanager, pkg/volume/{projected,configmap,secret,downwardapi}).

1. Each volume is a directory ``<root-dir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>``
   (plugins ``projected``, ``configmap``, ``secret``, ``downward-api``, ``empty-dir``), as on a real
   node (there it is a tmpfs; here a plain directory). Other kinds (hostPath, PVCs...) are not
   supported: a container mount of one is skipped.
2. Content is collected from the API with the node's credentials (the Node authorizer allows exactly
   the objects a pod on this node references) and written with the AtomicWriter (atomicwriter.py):
   ``configMap``/``secret`` sources give all keys, or the listed ``items`` (a missing key is an
   error unless ``optional``); ``downwardAPI`` items give ``fieldRef`` / ``resourceFieldRef`` values;
   ``serviceAccountToken`` gives a bound token from the token manager (token.py) for the pod's
   service account, bound to the pod, audience as the projection says (none: the apiserver's).
3. Files get the item's ``mode``, else the volume's ``defaultMode`` (0644 = 420 when unset).
4. A failure (a missing ConfigMap, a refused TokenRequest) is :class:`VolumeError`; the pod worker
   then does not start containers and records ``FailedMount``:
   ``MountVolume.SetUp failed for volume "kube-api-access-x7k2p" : configmap "kube-root-ca.crt" not found``.
5. Set-up is repeated on every pod sync (``--sync-frequency``): that is when tokens are refreshed and
   ConfigMap/Secret changes reach running pods. Tear-down removes the directories and the pod's tokens.
6. A container's mounts (:func:`container_mounts`): one per volumeMount of a set-up volume, with
   ``subPath``, read-only if asked or if the kind is always read-only (all but emptyDir). The shim
   bind-mounts them in the container's mount namespace (shim.py, mounts.py).
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from minikubelet import atomicwriter
from minikubelet.atomicwriter import FileProjection
from minikubelet.env import ContainerConfigError, field_value, resource_value
from minikubelet.token import TokenManager, token_request

Obj = dict[str, Any]
Fetch = Callable[[str, str, str], Awaitable[Obj | None]]
DEFAULT_MODE = 0o644
SERVICE_ACCOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
SERVICE_ACCOUNT_ENV = "MINIKUBELET_SERVICEACCOUNT_DIR"  # fallback without mount namespaces (shim.py)
PLUGINS = {"projected": "projected", "configMap": "configmap", "secret": "secret", "downwardAPI": "downward-api",
           "emptyDir": "empty-dir"}
READ_ONLY_KINDS = ("projected", "configMap", "secret", "downwardAPI")


class VolumeError(Exception):
    def __init__(self, volume: str, message: str) -> None:
        super().__init__(f'MountVolume.SetUp failed for volume "{volume}" : {message}')
        self.volume = volume


def volume_kind(volume: Mapping[str, Any]) -> str:
    return next((k for k in PLUGINS if k in volume), "")


def volume_dir(pod_dir: str, volume: Mapping[str, Any]) -> str:
    """Rule 1."""
    return os.path.join(pod_dir, "volumes", f"kubernetes.io~{PLUGINS[volume_kind(volume)]}", str(volume["name"]))


def _items(data: Mapping[str, bytes], items: Any, mode: int, missing: str, optional: bool) -> dict[str, FileProjection]:
    if not items:
        return {k: FileProjection(v, mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = str(item.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise ContainerConfigError(f"{missing}: {key}")
        out[str(item.get("path") or key)] = FileProjection(data[key], int(item.get("mode") or mode))
    return out


def _format_map(values: Mapping[str, Any]) -> str:
    """fieldpath.FormatMap: sorted ``key="value"`` lines (values quoted as Go's strconv.Quote)."""
    import json

    return "\n".join(f"{k}={json.dumps(str(values[k]), ensure_ascii=False)}" for k in sorted(values))


class VolumeManager:
    """Rules 1-5 for the pods of one kubelet."""

    def __init__(self, fetch: Fetch, tokens: TokenManager, host_ip: str) -> None:
        self.fetch, self.tokens, self.host_ip = fetch, tokens, host_ip

    async def setup(self, pod: Obj, pod_dir: str, pod_ip: str) -> dict[str, str]:
        """Set up (or refresh) every supported volume; volume name -> host directory."""
        out = {}
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            kind = volume_kind(volume)
            if not kind:
                continue
            name, path = str(volume.get("name", "")), volume_dir(pod_dir, volume)
            try:
                if kind == "emptyDir":
                    os.makedirs(path, exist_ok=True)
                    os.chmod(path, 0o777)
                else:
                    atomicwriter.write(path, await self._payload(pod, kind, volume[kind], pod_ip))
            except (ContainerConfigError, atomicwriter.PayloadError) as e:
                raise VolumeError(name, str(e)) from None
            except Exception as e:  # the token manager, the network
                raise VolumeError(name, str(e) or type(e).__name__) from None
            out[name] = path
        return out

    def teardown(self, pod_dir: str, uid: str) -> None:
        shutil.rmtree(os.path.join(pod_dir, "volumes"), ignore_errors=True)
        self.tokens.delete_pod(uid)

    async def _payload(self, pod: Obj, kind: str, source: Obj, pod_ip: str) -> dict[str, FileProjection]:
        mode = int(source.get("defaultMode") or DEFAULT_MODE)
        if kind == "projected":
            out: dict[str, FileProjection] = {}
            for projection in source.get("sources") or ():
                for sub, value in projection.items():
                    out.update(await self._source(pod, sub, value or {}, mode, pod_ip))
            return out
        if kind == "secret":
            source = {**source, "name": source.get("secretName", "")}
        return await self._source(pod, kind, source, mode, pod_ip)

    async def _source(self, pod: Obj, kind: str, src: Obj, mode: int, pod_ip: str) -> dict[str, FileProjection]:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        namespace, optional = str(meta.get("namespace", "")), bool(src.get("optional"))
        if kind in ("configMap", "secret"):
            resource = "configmaps" if kind == "configMap" else "secrets"
            obj = await self.fetch(resource, namespace, str(src.get("name", "")))
            if obj is None:
                if optional:
                    return {}
                raise ContainerConfigError(f'{kind.lower()} "{src.get("name", "")}" not found')
            data = _object_data(obj, kind)
            missing = "configmap references non-existent config key" if kind == "configMap" else \
                "references non-existent secret key"
            return _items(data, src.get("items"), mode, missing, optional)
        if kind == "downwardAPI":
            return {str(i.get("path")): FileProjection(self._field(pod, i, pod_ip).encode(), int(i.get("mode") or mode))
                    for i in src.get("items") or ()}
        if kind == "serviceAccountToken":
            body = token_request([src["audience"]] if src.get("audience") else [],
                                 int(src.get("expirationSeconds") or 3600), str(meta.get("name", "")),
                                 str(meta.get("uid", "")))
            sa = str(spec.get("serviceAccountName") or "default")
            tok = await self.tokens.get(namespace, sa, body)
            return {str(src.get("path") or "token"): FileProjection(tok.token.encode(), mode)}
        raise ContainerConfigError(f"unsupported projected volume source {kind!r}")

    def _field(self, pod: Obj, item: Obj, pod_ip: str) -> str:
        meta = pod.get("metadata") or {}
        if "resourceFieldRef" in item:
            ref = item["resourceFieldRef"]
            container: Obj = next((c for c in (pod.get("spec") or {}).get("containers") or ()
                              if c.get("name") == ref.get("containerName")), {})
            return resource_value(container, str(ref.get("resource", "")))
        path = str((item.get("fieldRef") or {}).get("fieldPath", ""))
        if path in ("metadata.labels", "metadata.annotations"):
            return _format_map(meta.get(path.split(".")[1]) or {})
        return field_value(pod, path, self.host_ip, pod_ip)


def _object_data(obj: Obj, kind: str) -> dict[str, bytes]:
    if kind == "secret":
        return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    data = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return data


def container_mounts(pod: Obj, container: Obj, paths: Mapping[str, str]) -> list[Obj]:
    """Rule 6: ``[{"source", "target", "readOnly", "fallbackEnv"}]`` for the shim; a bad ``subPath`` is a
    ContainerConfigError."""
    kinds = {str(v.get("name")): volume_kind(v) for v in (pod.get("spec") or {}).get("volumes") or ()}
    out = []
    for m in container.get("volumeMounts") or ():
        name, target = str(m.get("name", "")), str(m.get("mountPath", ""))
        if name not in paths or not target.startswith("/"):
            continue
        sub = str(m.get("subPath") or "")
        if sub.startswith("/") or ".." in sub.split("/"):
            raise ContainerConfigError(f"failed to prepare subPath for volumeMount {name!r}: subPath {sub!r} must "
                                       "be a relative path without '..'")
        source = os.path.join(paths[name], sub) if sub else paths[name]
        env = SERVICE_ACCOUNT_ENV if target.rstrip("/") == SERVICE_ACCOUNT_PATH else \
            "MINIKUBELET_VOLUME_" + "".join(ch if ch.isalnum() else "_" for ch in name.upper())
        out.append({"source": source, "target": target, "fallbackEnv": env,
                    "readOnly": bool(m.get("readOnly")) or kinds.get(name) in READ_ONLY_KINDS})
    return out
