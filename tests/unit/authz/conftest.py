"""Shared builders for the authorization tests: users, request attributes, RBAC objects, a store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from miniapi.authz.base import Attributes
from miniapi.authz.rbac import RBACAuthorizer
from miniapi.store.memory import MemoryStore
from miniapi.user import UserInfo

RBAC = "rbac.authorization.k8s.io"


def user(name: str, *groups: str) -> UserInfo:
    return UserInfo(name=name, groups=groups)


def req(u: UserInfo, verb: str, resource: str, *, ns: str = "", name: str = "", group: str = "",
        sub: str = "") -> Attributes:
    return Attributes(user=u, verb=verb, namespace=ns, api_group=group, resource=resource, subresource=sub,
                      name=name)


def url(u: UserInfo, verb: str, path: str) -> Attributes:
    return Attributes(user=u, verb=verb, is_resource_request=False, path=path)


def role(name: str, *rules: dict[str, Any], ns: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": f"{RBAC}/v1", "kind": "Role" if ns else "ClusterRole", "metadata": meta,
            "rules": list(rules)}


def binding(name: str, role_name: str, *subjects: dict[str, str], ns: str = "",
            role_kind: str = "ClusterRole") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"namespace": ns} if ns else {})}
    kind = "RoleBinding" if ns else "ClusterRoleBinding"
    return {"apiVersion": f"{RBAC}/v1", "kind": kind, "metadata": meta,
            "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name}, "subjects": list(subjects)}


def subject(kind: str, name: str, ns: str = "") -> dict[str, str]:
    out = {"kind": kind, "name": name}
    if ns:
        out["namespace"] = ns
    elif kind != "ServiceAccount":
        out["apiGroup"] = RBAC
    return out


def key(kind: str) -> str:
    return {"Role": f"roles.{RBAC}", "ClusterRole": f"clusterroles.{RBAC}",
            "RoleBinding": f"rolebindings.{RBAC}", "ClusterRoleBinding": f"clusterrolebindings.{RBAC}"}[kind]


async def put(store: MemoryStore, *objs: dict[str, Any]) -> None:
    for obj in objs:
        await store.create(key(obj["kind"]), obj)


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    async with MemoryStore() as s:
        yield s


@pytest.fixture
async def rbac(store: MemoryStore) -> AsyncIterator[RBACAuthorizer]:
    authorizer = RBACAuthorizer(store)
    await authorizer.start()
    yield authorizer
    await authorizer.stop()
