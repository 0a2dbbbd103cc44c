"""The RBAC authorizer (plugin/pkg/auth/authorizer/rbac) and the 403 text every denial carries.

It reads Roles, ClusterRoles, RoleBindings and ClusterRoleBindings from an in-memory index kept
current by list + watch (:class:`Informers`, client-go's Reflector), so ``authorize`` -- on every
request's path -- never touches the store and costs O(bindings that name the user or their groups).

1. Only ALLOW or NO_OPINION: RBAC never denies; the filter denies unless someone allowed.
2. Bindings that apply: every ClusterRoleBinding, then every RoleBinding in the request's namespace,
   whose subjects name the user. ``User`` matches the name, ``Group`` one of the groups,
   ``ServiceAccount`` the name ``system:serviceaccount:NS:NAME`` (NS defaults to the RoleBinding's own).
3. A RoleBinding may point at a Role in its namespace or at a ClusterRole; either way it grants only
   inside the binding's namespace. A ClusterRoleBinding grants everywhere, cluster scope included.
4. A rule allows a resource request when verb, API group, resource and name all match:
   ``*`` matches any verb/group/resource; the resource compared is ``resource/subresource``, and
   ``*/sub`` matches that subresource of anything (``pods/*`` is NOT a wildcard, as in kube);
   ``resourceNames``, when present, must contain the request's name, so they never match a request
   without one (list, watch, create by POST).
5. A rule allows a non-resource request when the verb matches and a URL equals the path, or ends in
   ``*`` and the path starts with what comes before it.
6. The reason names what allowed: ``RBAC: allowed by ClusterRoleBinding "b" of ClusterRole "r" to
   User "alice"``. A NO_OPINION carries a reason only when a binding points at a missing role.
7. Decisions are remembered per (user name, groups, verb, namespace, group, resource, subresource,
   name, non-resource path): everything rules 2-6 read. Any change to the index (an informer event or
   relist of any of the four kinds) forgets them all in the same step that changes the index, so the
   next request is decided anew against the new index. At most :data:`DECISION_CACHE_SIZE` are kept
   (the oldest goes first), and none whose path and name are longer than :data:`DECISION_CACHE_MAX_KEY`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from miniapi.authz.base import Attributes, Decision, NonResourceRule, ResourceRule, Revision, RulesResult
from miniapi.authz.informer import Informers, ref
from miniapi.store.base import Obj, Store
from miniapi.user import SERVICEACCOUNT_USER_PREFIX, UserInfo

GROUP = "rbac.authorization.k8s.io"
ROLES, ROLEBINDINGS = f"roles.{GROUP}", f"rolebindings.{GROUP}"
CLUSTERROLES, CLUSTERROLEBINDINGS = f"clusterroles.{GROUP}", f"clusterrolebindings.{GROUP}"
DECISION_CACHE_SIZE = 4096
DECISION_CACHE_MAX_KEY = 1024  # requests with longer paths/names are decided without being remembered
_SANITIZE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def go_quote(s: str) -> str:
    """Go's ``%q`` for a string (close enough: JSON escaping of the same characters)."""
    return json.dumps(s, ensure_ascii=False)


def go_quote_list(items: Iterable[str]) -> str:
    """Go's ``%q`` for a []string: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(i) for i in items) + "]"


def forbidden_message(attrs: Attributes) -> str:
    """The apiserver's 403 message (responsewriters.Forbidden + apierrors.NewForbidden); callers append
    ``": " + reason`` when the authorizers gave one."""
    user = go_quote(attrs.user.name)
    if not attrs.is_resource_request:
        detail = f"User {user} cannot {attrs.verb} path {go_quote(attrs.path)}"
    else:
        resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        scope = f"in the namespace {go_quote(attrs.namespace)}" if attrs.namespace else "at the cluster scope"
        detail = (f"User {user} cannot {attrs.verb} resource {go_quote(resource)} in API group "
                  f"{go_quote(attrs.api_group)} {scope}")
    detail = detail.translate(_SANITIZE)
    if not attrs.resource and not attrs.api_group:
        return f"forbidden: {detail}"
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    if not attrs.name:
        return f"{qualified} is forbidden: {detail}"
    return f"{qualified} {go_quote(attrs.name)} is forbidden: {detail}"


# -- rules --------------------------------------------------------------------------------------------

def _strs(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True, eq=False)
class PolicyRule:
    """A PolicyRule compiled once for fast matching (sets; ``*/sub`` and URL prefixes pre-split)."""

    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()
    _verbs: frozenset[str] = field(init=False, repr=False)
    _groups: frozenset[str] = field(init=False, repr=False)
    _resources: frozenset[str] = field(init=False, repr=False)
    _star_subs: frozenset[str] = field(init=False, repr=False)
    _names: frozenset[str] = field(init=False, repr=False)
    _urls: frozenset[str] = field(init=False, repr=False)
    _prefixes: tuple[str, ...] = field(init=False, repr=False)

    @classmethod
    def from_json(cls, rule: Mapping[str, Any]) -> PolicyRule:
        return cls(_strs(rule.get("verbs")), _strs(rule.get("apiGroups")), _strs(rule.get("resources")),
                   _strs(rule.get("resourceNames")), _strs(rule.get("nonResourceURLs")))

    def __post_init__(self) -> None:
        put = object.__setattr__
        put(self, "_verbs", frozenset(self.verbs))
        put(self, "_groups", frozenset(self.api_groups))
        put(self, "_resources", frozenset(self.resources))
        put(self, "_star_subs", frozenset(r[2:] for r in self.resources if r.startswith("*/")))
        put(self, "_names", frozenset(self.resource_names))
        put(self, "_urls", frozenset(self.non_resource_urls))
        put(self, "_prefixes", tuple(u.rstrip("*") for u in self.non_resource_urls if u.endswith("*")))

    def allows(self, attrs: Attributes) -> bool:
        """RBAC's RuleAllows (rules 4 and 5)."""
        if "*" not in self._verbs and attrs.verb not in self._verbs:
            return False
        if not attrs.is_resource_request:
            return attrs.path in self._urls or any(attrs.path.startswith(p) for p in self._prefixes)
        if "*" not in self._groups and attrs.api_group not in self._groups:
            return False
        sub = attrs.subresource
        combined = f"{attrs.resource}/{sub}" if sub else attrs.resource
        if not ("*" in self._resources or combined in self._resources or (sub and sub in self._star_subs)):
            return False
        return not self._names or attrs.name in self._names


def compile_rules(obj: Obj) -> tuple[PolicyRule, ...]:
    return tuple(PolicyRule.from_json(r) for r in obj.get("rules") or () if isinstance(r, Mapping))


# -- bindings -----------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Subject:
    kind: str
    name: str
    namespace: str
    key: tuple[str, str] | None  # ("u", username) or ("g", group); None if it can never match

    def describe(self, binding_namespace: str) -> str:
        """describeSubject: ServiceAccounts print as "name/namespace" (kube's order, not ours)."""
        if self.kind == "ServiceAccount":
            return f"{self.kind} {go_quote(self.name + '/' + (self.namespace or binding_namespace))}"
        return f"{self.kind} {go_quote(self.name)}"


@dataclass(frozen=True, slots=True)
class Binding:
    namespace: str  # "" for a ClusterRoleBinding
    name: str
    role_kind: str
    role_name: str
    subjects: tuple[Subject, ...]

    @classmethod
    def from_json(cls, obj: Obj) -> Binding:
        meta, ref = obj.get("metadata") or {}, obj.get("roleRef") or {}
        namespace = str(meta.get("namespace") or "")
        subjects = tuple(_subject(s, namespace) for s in obj.get("subjects") or () if isinstance(s, Mapping))
        return cls(namespace, str(meta.get("name") or ""), str(ref.get("kind") or ""),
                   str(ref.get("name") or ""), subjects)

    def describe(self, subject: Subject) -> str:
        ref = f"{self.role_kind} {go_quote(self.role_name)}"
        if not self.namespace:
            return f"ClusterRoleBinding {go_quote(self.name)} of {ref} to {subject.describe('')}"
        return (f"RoleBinding {go_quote(self.name + '/' + self.namespace)} of {ref} to "
                f"{subject.describe(self.namespace)}")


def _subject(s: Mapping[str, Any], binding_namespace: str) -> Subject:
    kind, name, ns = str(s.get("kind") or ""), str(s.get("name") or ""), str(s.get("namespace") or "")
    key: tuple[str, str] | None = None
    if kind == "User":
        key = ("u", name)
    elif kind == "Group":
        key = ("g", name)
    elif kind == "ServiceAccount" and (ns or binding_namespace) and name:
        key = ("u", f"{SERVICEACCOUNT_USER_PREFIX}{ns or binding_namespace}:{name}")
    return Subject(kind, name, ns, key)


def user_keys(user: UserInfo) -> list[tuple[str, str]]:
    return [("u", user.name), *(("g", g) for g in user.groups)]


def aggregate(errors: list[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message bare, several as ``[a, b]`` (deduplicated)."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# -- the authorizer -----------------------------------------------------------------------------------

class RBACAuthorizer:
    """Authorizer and RuleResolver over an index of the four RBAC kinds (rules 1-6)."""

    name = "RBAC"

    def __init__(self, store: Store) -> None:
        self._roles: dict[tuple[str, str], tuple[PolicyRule, ...]] = {}
        self._cluster_roles: dict[str, tuple[PolicyRule, ...]] = {}
        self._bindings: dict[tuple[str, str], Binding] = {}  # (namespace or "", name)
        self._by_subject: dict[tuple[str, str, str], set[str]] = {}  # (binding ns, u|g, name) -> names
        self._decisions: dict[tuple[object, ...], tuple[Decision, str]] = {}  # rule 7
        self.revision = Revision()  # bumped with every index change (the union's cache)
        self._informers = Informers(store, (CLUSTERROLES, ROLES, CLUSTERROLEBINDINGS, ROLEBINDINGS),
                                    self._apply, self._replace)

    async def start(self) -> None:
        await self._informers.start()

    async def stop(self) -> None:
        await self._informers.stop()

    async def synced(self, timeout: float = 5.0) -> None:
        """Wait until the index reflects every write the store has committed."""
        await self._informers.synced(timeout)

    # -- index maintenance (called by the informers) ---------------------------------------------

    def _replace(self, key: str, objs: list[Obj]) -> None:
        self._decisions.clear()
        self.revision.bump()
        if key == ROLES:
            self._roles.clear()
        elif key == CLUSTERROLES:
            self._cluster_roles.clear()
        else:
            cluster = key == CLUSTERROLEBINDINGS
            for ref in [r for r in self._bindings if (r[0] == "") == cluster]:
                self._unbind(ref)
        for obj in objs:
            self._apply(key, "ADDED", obj)

    def _apply(self, key: str, type_: str, obj: Obj) -> None:
        self._decisions.clear()
        self.revision.bump()
        namespace, name = ref(obj)
        if key == ROLES:
            self._put(self._roles, (namespace, name), type_, obj)
        elif key == CLUSTERROLES:
            self._put(self._cluster_roles, name, type_, obj)
        else:
            ref_ = ("" if key == CLUSTERROLEBINDINGS else namespace, name)
            self._unbind(ref_)
            if type_ != "DELETED":
                binding = Binding.from_json(obj)
                self._bindings[ref_] = binding
                for s in binding.subjects:
                    if s.key is not None:
                        self._by_subject.setdefault((ref_[0], *s.key), set()).add(name)

    @staticmethod
    def _put(index: dict[Any, tuple[PolicyRule, ...]], k: Any, type_: str, obj: Obj) -> None:
        if type_ == "DELETED":
            index.pop(k, None)
        else:
            index[k] = compile_rules(obj)

    def _unbind(self, ref_: tuple[str, str]) -> None:
        old = self._bindings.pop(ref_, None)
        for s in old.subjects if old else ():
            names = self._by_subject.get((ref_[0], *s.key)) if s.key else None
            if names is not None:
                names.discard(ref_[1])
                if not names:
                    del self._by_subject[(ref_[0], *s.key)]  # type: ignore[misc]

    # -- lookups ------------------------------------------------------------------------------------

    def _applicable(self, user: UserInfo, namespace: str) -> Iterable[Binding]:
        """Rule 2: ClusterRoleBindings first, then RoleBindings of ``namespace``, each sorted by name."""
        keys = user_keys(user)
        for scope in ("", namespace) if namespace else ("",):
            names: set[str] = set()
            for k in keys:
                names.update(self._by_subject.get((scope, *k), ()))
            for name in sorted(names):
                yield self._bindings[(scope, name)]

    def role_rules(self, binding: Binding) -> tuple[tuple[PolicyRule, ...], str]:
        """The rules a binding grants, or an error naming the missing role (the lister's wording)."""
        if binding.role_kind == "ClusterRole":
            rules = self._cluster_roles.get(binding.role_name)
            kind = "clusterrole"
        elif binding.role_kind == "Role" and binding.namespace:
            rules = self._roles.get((binding.namespace, binding.role_name))
            kind = "role"
        else:
            return (), f"unsupported roleRef kind {go_quote(binding.role_kind)}"
        if rules is not None:  # the hot path: no message to build
            return rules, ""
        return (), f"{kind}.{GROUP} {go_quote(binding.role_name)} not found"

    def rules_of(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones when ``""``)."""
        rules: list[PolicyRule] = []
        errors: list[str] = []
        for binding in self._applicable(user, namespace):
            granted, error = self.role_rules(binding)
            rules.extend(granted)
            if error:
                errors.append(error)
        return rules, errors

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        user = attrs.user
        key = (user.name, user.groups, attrs.verb, attrs.is_resource_request, attrs.namespace, attrs.api_group,
               attrs.resource, attrs.subresource, attrs.name, "" if attrs.is_resource_request else attrs.path)
        decided = self._decisions.get(key)
        if decided is None:
            decided = self.decide(attrs)
            if len(attrs.path) + len(attrs.name) + len(attrs.namespace) > DECISION_CACHE_MAX_KEY:
                return decided
            if len(self._decisions) >= DECISION_CACHE_SIZE:
                del self._decisions[next(iter(self._decisions))]
            self._decisions[key] = decided
        return decided

    def decide(self, attrs: Attributes) -> tuple[Decision, str]:
        """Rules 1-6, uncached."""
        errors: list[str] = []
        for binding in self._applicable(attrs.user, attrs.namespace):
            rules, error = self.role_rules(binding)
            if error:
                errors.append(error)
            for rule in rules:
                if rule.allows(attrs):
                    keys = set(user_keys(attrs.user))
                    subject = next(s for s in binding.subjects if s.key in keys)
                    return Decision.ALLOW, f"RBAC: allowed by {binding.describe(subject)}"
        return Decision.NO_OPINION, f"RBAC: {aggregate(errors)}" if errors else ""

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult:
        rules, errors = self.rules_of(user, namespace)
        resource = tuple(ResourceRule(r.verbs, r.api_groups, r.resources, r.resource_names)
                         for r in rules if r.resources)
        non_resource = tuple(NonResourceRule(r.verbs, r.non_resource_urls)
                             for r in rules if r.non_resource_urls)
        return RulesResult(resource, non_resource, False, aggregate(errors) if errors else "")
