"""The built-in authorizers (k8s.io/apiserver/pkg/authorization/authorizerfactory/builtin.go).

1. ``AlwaysAllow`` allows every request; as a RuleResolver it reports ``*`` on everything.
2. ``AlwaysDeny`` denies every request and reports no rules. Kube's version returns NO_OPINION despite
   its name; ours says DENY, so in a union nothing after it is consulted (kube would ask the next
   mode). The outcome of ``--authorization-mode=AlwaysDeny`` alone is the same 403 either way.
3. ``PrivilegedGroups`` allows members of the given groups; kube-apiserver always puts one for
   ``system:masters`` first in its union, so no policy can lock out the cluster's root identity.
All three give no reason, as in kube (so a 403's message ends without ``: <reason>``).
"""

from __future__ import annotations

from miniapi.authz.base import Attributes, Decision, NonResourceRule, ResourceRule, RulesResult
from miniapi.user import SYSTEM_PRIVILEGED_GROUP, UserInfo


class AlwaysAllow:
    name = "AlwaysAllow"

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.ALLOW, ""

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult:
        return RulesResult((ResourceRule(("*",), ("*",), ("*",)),), (NonResourceRule(("*",), ("*",)),))


class AlwaysDeny:
    name = "AlwaysDeny"

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        return Decision.DENY, ""

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult:
        return RulesResult()


class PrivilegedGroups:
    name = "PrivilegedGroups"

    def __init__(self, *groups: str) -> None:
        self.groups = frozenset(groups or (SYSTEM_PRIVILEGED_GROUP,))

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        if not self.groups.isdisjoint(attrs.user.groups):
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""
