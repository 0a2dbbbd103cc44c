"""Plain Kubernetes objects the kit creates for tests: namespaces, service accounts, pods, nodes,
bootstrap-token Secrets, RBAC roles and bindings. Pure functions returning dicts (JSON shapes)."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from miniapi import resources
from miniapi.client import resource_path

Obj = dict[str, Any]
RBAC_V1 = "rbac.authorization.k8s.io/v1"
DEFAULT_NODE_TOKEN_GROUP = "system:bootstrappers:kubeadm:default-node-token"
PAUSE_IMAGE = "registry.k8s.io/pause:3.10"


def namespace(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service_account(namespace: str, name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}}


def pod(namespace: str, name: str, *, service_account: str = "default", node: str | None = None,
        secrets: Sequence[str] = (), configmaps: Sequence[str] = ()) -> Obj:
    """A pause pod; ``secrets``/``configmaps`` are mounted as volumes (edges of the Node graph)."""
    volumes = [{"name": f"s-{s}", "secret": {"secretName": s}} for s in secrets]
    volumes += [{"name": f"c-{c}", "configMap": {"name": c}} for c in configmaps]
    spec: Obj = {"serviceAccountName": service_account,
                 "containers": [{"name": "app", "image": PAUSE_IMAGE}]}
    if volumes:
        spec["volumes"] = volumes
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def node(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}


def role(name: str, rules: Iterable[Obj], namespace: str | None = None) -> Obj:
    """A Role (with ``namespace``) or ClusterRole."""
    kind = "Role" if namespace else "ClusterRole"
    meta: Obj = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC_V1, "kind": kind, "metadata": meta, "rules": list(rules)}


def role_binding(name: str, role_name: str, *, users: Sequence[str] = (), groups: Sequence[str] = (),
                 service_accounts: Sequence[tuple[str, str]] = (), namespace: str | None = None,
                 cluster_role: bool | None = None) -> Obj:
    """A RoleBinding (with ``namespace``) or ClusterRoleBinding; the roleRef is a Role in the same
    namespace unless ``cluster_role`` (default: ClusterRole when there is no namespace)."""
    subjects = [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": u} for u in users]
    subjects += [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g} for g in groups]
    subjects += [{"kind": "ServiceAccount", "name": n, "namespace": ns} for ns, n in service_accounts]
    use_cluster_role = cluster_role if cluster_role is not None else not namespace
    meta: Obj = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": RBAC_V1, "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": meta, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole" if use_cluster_role else "Role", "name": role_name}}


def bootstrap_token_secret(token_id: str, token_secret: str, *,
                           extra_groups: Sequence[str] = (DEFAULT_NODE_TOKEN_GROUP,),
                           expiration: dt.datetime | None = None, usage_authentication: bool = True) -> Obj:
    """``kube-system/bootstrap-token-<id>`` as ``kubeadm token create`` writes it (base64 ``data``)."""
    values = {"token-id": token_id, "token-secret": token_secret, "usage-bootstrap-signing": "true"}
    if usage_authentication:
        values["usage-bootstrap-authentication"] = "true"
    if extra_groups:
        values["auth-extra-groups"] = ",".join(extra_groups)
    if expiration is not None:
        values["expiration"] = expiration.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
            "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def collection_path(obj: Obj) -> str:
    """``/api/v1/namespaces/NS/pods`` for an object, from its apiVersion and kind."""
    group, _, _version = str(obj.get("apiVersion", "")).rpartition("/")
    rt = resources.by_kind(group, str(obj.get("kind", "")))
    if rt is None:
        raise ValueError(f"unknown kind {obj.get('kind')!r} in {obj.get('apiVersion')!r}")
    namespace = str((obj.get("metadata") or {}).get("namespace") or "") if rt.namespaced else ""
    return resource_path(rt.resource, namespace, group=rt.group)


def object_path(obj: Obj) -> str:
    return f"{collection_path(obj)}/{obj['metadata']['name']}"
