"""The authorizer chain behind ``--authorization-mode`` (k8s.io/apiserver/pkg/authorization/union and
pkg/kubeapiserver/authorizer/config.go).

1. ``UnionAuthorizer`` asks each authorizer in order; the first ALLOW or DENY wins, with its reason.
   If all have no opinion, the answer is NO_OPINION with their non-empty reasons joined by newlines
   (the filter then denies and appends them to the 403 message).
2. ``UnionRuleResolver`` concatenates every resolver's rules; incomplete if any is, and the
   evaluation errors joined (what SelfSubjectRulesReview reports).
3. ``build_authorizer(modes, store)`` builds the chain for ``--authorization-mode``: first, always,
   the ``system:masters`` PrivilegedGroups authorizer (as kube-apiserver does), then one authorizer
   per mode, in the given order: AlwaysAllow, AlwaysDeny, Node, RBAC. No modes, a repeated mode or an
   unknown one is a ValueError: a server without authorization must refuse to start.
4. Node and RBAC keep watch-fed indexes: ``Authorization.start()`` fills them before serving and
   ``stop()`` ends their watches.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from miniapi.authz.always import AlwaysAllow, AlwaysDeny, PrivilegedGroups
from miniapi.authz.base import Attributes, Authorizer, Decision, Revision, RuleResolver, RulesResult
from miniapi.authz.node import NodeAuthorizer
from miniapi.authz.rbac import RBACAuthorizer, aggregate
from miniapi.store.base import Store
from miniapi.user import UserInfo

MODES = ("AlwaysAllow", "AlwaysDeny", "Node", "RBAC")


STATELESS = (PrivilegedGroups, AlwaysAllow, AlwaysDeny)  # answers that depend on the Attributes alone
CACHE_SIZE = 4096
CACHE_MAX_PATH = 1024


class UnionAuthorizer:
    """Rule 1. When every authorizer is stateless or has a :class:`Revision`, the answer for an
    Attributes object is remembered with the sum of those revisions (each only grows, so the sum
    changes with any of them) and reused while it stands: an RBAC or Node index change decides the
    next request anew. WithAuthorization hands out the same Attributes object for a repeat request."""

    name = "Union"

    def __init__(self, authorizers: Sequence[Authorizer]) -> None:
        self.authorizers = tuple(authorizers)
        revisions: list[Revision] = []
        for authorizer in self.authorizers:
            revision = getattr(authorizer, "revision", None)
            if isinstance(revision, Revision):
                revisions.append(revision)
            elif not isinstance(authorizer, STATELESS):
                revisions = []
                self._cacheable = False
                break
        else:
            self._cacheable = True
        self._revisions = tuple(revisions)
        # id(attrs) -> (attrs, revision sum, answer); the entry holds attrs, so its id is not reused
        self._decided: dict[int, tuple[Attributes, int, tuple[Decision, str]]] = {}

    def _revision(self) -> int:
        total = 0
        for revision in self._revisions:
            total += revision.value
        return total

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        if not self._cacheable:
            return await self._decide(attrs)
        revision = self._revision()
        hit = self._decided.get(id(attrs))
        if hit is not None and hit[0] is attrs and hit[1] == revision:
            return hit[2]
        decided = await self._decide(attrs)
        if len(attrs.path) <= CACHE_MAX_PATH and self._revision() == revision:  # nothing changed meanwhile
            if len(self._decided) >= CACHE_SIZE:
                del self._decided[next(iter(self._decided))]
            self._decided[id(attrs)] = (attrs, revision, decided)
        return decided

    async def _decide(self, attrs: Attributes) -> tuple[Decision, str]:
        reasons: list[str] = []
        for authorizer in self.authorizers:
            decision, reason = await authorizer.authorize(attrs)
            if decision is not Decision.NO_OPINION:
                return decision, reason
            if reason:
                reasons.append(reason)
        return Decision.NO_OPINION, "\n".join(reasons)


class UnionRuleResolver:
    def __init__(self, resolvers: Sequence[RuleResolver]) -> None:
        self.resolvers = tuple(resolvers)

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult:
        results = [await r.rules_for(user, namespace) for r in self.resolvers]
        errors = [r.evaluation_error for r in results if r.evaluation_error]
        return RulesResult(tuple(rule for r in results for rule in r.resource_rules),
                           tuple(rule for r in results for rule in r.non_resource_rules),
                           any(r.incomplete for r in results), aggregate(errors) if errors else "")


class Authorization(NamedTuple):
    """What ``build_authorizer`` returns; unpacks as ``(authorizer, rule_resolver, indexes)``."""

    authorizer: UnionAuthorizer
    rule_resolver: UnionRuleResolver
    indexes: Indexes


class Indexes:
    """Start/stop for the watch-fed authorizers; ``rbac`` and ``node`` are None unless enabled."""

    def __init__(self, rbac: RBACAuthorizer | None, node: NodeAuthorizer | None) -> None:
        self.rbac, self.node = rbac, node
        self._parts = [p for p in (node, rbac) if p is not None]

    async def start(self) -> None:
        for part in self._parts:
            await part.start()

    async def stop(self) -> None:
        for part in self._parts:
            await part.stop()

    async def synced(self, timeout: float = 5.0) -> None:
        for part in self._parts:
            await part.synced(timeout)


def build_authorizer(modes: Sequence[str], store: Store) -> Authorization:
    if not modes:
        raise ValueError("at least one authorization-mode must be passed")
    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"authorization-mode {mode!r} is not a valid mode (valid: {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"authorization-mode {','.join(modes)!r} has mode specified more than once")
    authorizers: list[Authorizer] = [PrivilegedGroups()]
    resolvers: list[RuleResolver] = []
    rbac = node = None
    for mode in modes:
        part: AlwaysAllow | AlwaysDeny | NodeAuthorizer | RBACAuthorizer
        if mode == "AlwaysAllow":
            part = AlwaysAllow()
        elif mode == "AlwaysDeny":
            part = AlwaysDeny()
        elif mode == "Node":
            part = node = NodeAuthorizer(store)
        else:
            part = rbac = RBACAuthorizer(store)
        authorizers.append(part)
        resolvers.append(part)
    return Authorization(UnionAuthorizer(authorizers), UnionRuleResolver(resolvers), Indexes(rbac, node))
