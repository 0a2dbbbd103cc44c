"""Who is asking: the UserInfo every authenticator produces and every authorizer reads.

Mirrors k8s.io/apiserver/pkg/authentication/user: name, uid, groups, extra, and the
well-known ``system:*`` names used by the default policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Well-known groups and users (k8s.io/apiserver/pkg/authentication/user/user.go).
SYSTEM_PRIVILEGED_GROUP = "system:masters"
NODES_GROUP = "system:nodes"
MONITORING_GROUP = "system:monitoring"
ALL_UNAUTHENTICATED = "system:unauthenticated"
ALL_AUTHENTICATED = "system:authenticated"
ANONYMOUS = "system:anonymous"
APISERVER_USER = "system:apiserver"
KUBE_PROXY = "system:kube-proxy"
KUBE_CONTROLLER_MANAGER = "system:kube-controller-manager"
KUBE_SCHEDULER = "system:kube-scheduler"
BOOTSTRAP_USER_PREFIX = "system:bootstrap:"
BOOTSTRAP_GROUP = "system:bootstrappers"
NODE_USER_PREFIX = "system:node:"
SERVICEACCOUNT_USER_PREFIX = "system:serviceaccount:"
SERVICEACCOUNTS_GROUP = "system:serviceaccounts"


@dataclass(frozen=True)
class UserInfo:
    """An authenticated (or anonymous) identity. ``extra`` maps keys to tuples of values."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        """The authentication.k8s.io/v1 UserInfo JSON shape."""
        out: dict[str, object] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = {k: list(v) for k, v in self.extra.items()}
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> UserInfo:
        extra = data.get("extra") or {}
        groups = data.get("groups") or ()
        if not isinstance(extra, Mapping) or not isinstance(groups, list | tuple):
            raise ValueError("groups must be a list and extra a map of lists")
        return cls(
            name=str(data.get("username") or data.get("user") or ""),
            uid=str(data.get("uid") or ""),
            groups=tuple(str(g) for g in groups),
            extra={str(k): tuple(str(x) for x in v) for k, v in extra.items()},
        )


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """Add system:authenticated, as the real union authenticator does for every non-anonymous user."""
    if user.name == ANONYMOUS or ALL_AUTHENTICATED in user.groups or ALL_UNAUTHENTICATED in user.groups:
        return user
    return UserInfo(user.name, user.uid, (*user.groups, ALL_AUTHENTICATED), user.extra)


def node_name_of(user: UserInfo) -> str | None:
    """``system:node:NAME`` in group system:nodes -> NAME (the Node authorizer's identifier)."""
    if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
        return user.name[len(NODE_USER_PREFIX):] or None
    return None


def serviceaccount_of(user: UserInfo) -> tuple[str, str] | None:
    """``system:serviceaccount:NS:NAME`` -> (NS, NAME)."""
    if not user.name.startswith(SERVICEACCOUNT_USER_PREFIX):
        return None
    rest = user.name[len(SERVICEACCOUNT_USER_PREFIX):].split(":")
    if len(rest) != 2 or not all(rest):
        return None
    return rest[0], rest[1]
