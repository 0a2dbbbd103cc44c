"""Which strategy serves which stored resource (keyed by GroupResource, see miniapi.resources)."""

from __future__ import annotations

from miniapi import resources
from miniapi.registry.base import Strategy, name_rule_path_segment
from miniapi.registry.certificates import CSRStrategy
from miniapi.registry.core import (
    ConfigMapStrategy,
    NamespaceStrategy,
    NodeStrategy,
    PodStrategy,
    SecretStrategy,
    ServiceStrategy,
)
from miniapi.registry.rbac import RBACStrategy

_SPECIAL: dict[str, type[Strategy]] = {
    "namespaces": NamespaceStrategy,
    "nodes": NodeStrategy,
    "pods": PodStrategy,
    "services": ServiceStrategy,
    "secrets": SecretStrategy,
    "configmaps": ConfigMapStrategy,
    "certificatesigningrequests.certificates.k8s.io": CSRStrategy,
    "roles.rbac.authorization.k8s.io": RBACStrategy,
    "rolebindings.rbac.authorization.k8s.io": RBACStrategy,
    "clusterroles.rbac.authorization.k8s.io": RBACStrategy,
    "clusterrolebindings.rbac.authorization.k8s.io": RBACStrategy,
}


class EventStrategy(Strategy):
    name_rule = staticmethod(name_rule_path_segment)


def strategies() -> dict[str, Strategy]:
    out: dict[str, Strategy] = {}
    for rt in resources.RESOURCES:
        if not rt.stored:
            continue
        cls = _SPECIAL.get(rt.key, EventStrategy if rt.resource == "events" else Strategy)
        out[rt.key] = cls(rt)
    return out
