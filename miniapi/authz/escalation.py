"""RBAC escalation prevention: the check the roles/bindings registry runs before every write
(pkg/registry/rbac/{role,clusterrole,rolebinding,clusterrolebinding}/policybased, and
pkg/registry/rbac/validation's ConfirmNoEscalation and Covers).

1. Members of ``system:masters`` may write anything (the apiserver's own loopback identity is one).
2. A Role or ClusterRole may be written by someone the authorizer allows to ``escalate`` it (on create
   the request carries no name, so only an ``escalate`` rule without resourceNames counts), or who
   already holds every permission it grants -- in the object's namespace for a Role, cluster-wide for
   a ClusterRole.
3. Setting a ClusterRole's ``aggregationRule`` (which can collect anything) needs ``*`` on everything.
4. A RoleBinding or ClusterRoleBinding may be written by someone allowed to ``bind`` the referenced
   role (by name, in the binding's namespace), or who holds every permission that role grants.
5. An update that only touches garbage-collection fields (ownerReferences, finalizers) is not checked.
6. "Holds" is decided by Covers: the new rules are broken into one-verb, one-resource, one-name
   pieces, and each piece must fit inside one rule the writer holds. The pieces that do not fit are
   compacted (same group/resource/name: verbs merged), printed like kube, sorted, one per line.

The writer's own rules are read from the store, as the real registry does (its rule resolver reads
storage, not the authorizer's cache), so a binding created a moment ago already counts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from miniapi.authz.base import Attributes, Authorizer, Decision
from miniapi.authz.rbac import (
    CLUSTERROLEBINDINGS,
    CLUSTERROLES,
    GROUP,
    ROLEBINDINGS,
    ROLES,
    Binding,
    PolicyRule,
    compile_rules,
    go_quote,
    go_quote_list,
    user_keys,
)
from miniapi.store.base import NotFound, Obj, Store
from miniapi.user import SYSTEM_PRIVILEGED_GROUP, UserInfo

RESOURCE_OF = {"Role": "roles", "ClusterRole": "clusterroles", "RoleBinding": "rolebindings",
               "ClusterRoleBinding": "clusterrolebindings"}
FULL_AUTHORITY = (PolicyRule(("*",), ("*",), ("*",)), PolicyRule(("*",), non_resource_urls=("*",)))
_GC_FIELDS = ("ownerReferences", "finalizers", "selfLink", "managedFields", "resourceVersion")


async def check_escalation(store: Store, authorizer: Authorizer | None, user: UserInfo, obj: Obj, kind: str,
                           *, old: Obj | None = None) -> str | None:
    """None if ``user`` may write ``obj`` (a ``kind``), else the full Forbidden message.

    ``authorizer`` answers the ``escalate``/``bind`` questions; pass the server's whole union (as kube
    does) or the RBAC authorizer; None skips those shortcuts. ``old`` marks an update (rule 5)."""
    if SYSTEM_PRIVILEGED_GROUP in user.groups:
        return None
    if old is not None and only_gc_fields_changed(obj, old):
        return None
    meta = obj.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), str(meta.get("namespace") or "")
    if kind == "ClusterRole":
        namespace = ""
    resource = RESOURCE_OF[kind]
    prefix = f"{resource}.{GROUP} {go_quote(name)} is forbidden: "
    if kind in ("Role", "ClusterRole"):
        request_name = name if old is not None else ""
        if await _allowed(authorizer, user, "escalate", resource, request_name, namespace):
            return None
        problem = await confirm_no_escalation(store, user, namespace, compile_rules(obj))
        aggregating = obj.get("aggregationRule") or (old or {}).get("aggregationRule")
        if problem is None and kind == "ClusterRole" and aggregating:
            if await confirm_no_escalation(store, user, "", FULL_AUTHORITY) is not None:
                problem = "must have cluster-admin privileges to use the aggregationRule"
        return prefix + problem if problem else None
    ref = obj.get("roleRef") or {}
    ref_kind, ref_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
    if ref_kind in ("Role", "ClusterRole") and await _allowed(
            authorizer, user, "bind", RESOURCE_OF[ref_kind], ref_name, namespace):
        return None
    granted, error = await _referenced_rules(store, ref_kind, ref_name, namespace)
    if error:
        return prefix + error
    problem = await confirm_no_escalation(store, user, namespace, granted)
    return prefix + problem if problem else None


async def confirm_no_escalation(store: Store, user: UserInfo, namespace: str,
                                rules: Sequence[PolicyRule]) -> str | None:
    """ConfirmNoEscalation: None if ``user`` holds ``rules`` in ``namespace``, else the message."""
    owned, errors = await rules_from_store(store, user, namespace)
    missing = uncovered(owned, rules)
    if not missing:
        return None
    lines = sorted({compact_string(r) for r in compact(missing)})
    msg = (f"user {go_quote(user.name)} (groups={go_quote_list(user.groups)}) is attempting to grant RBAC "
           "permissions not currently held:\n" + "\n".join(lines))
    if errors:
        msg += f"; resolution errors: [{' '.join(errors)}]"
    return msg


async def rules_from_store(store: Store, user: UserInfo, namespace: str
                           ) -> tuple[list[PolicyRule], list[str]]:
    """The registry's DefaultRuleResolver.RulesFor, reading storage directly."""
    keys = set(user_keys(user))
    bindings, _ = await store.list(CLUSTERROLEBINDINGS)
    if namespace:
        bindings += (await store.list(ROLEBINDINGS, namespace))[0]
    rules: list[PolicyRule] = []
    errors: list[str] = []
    for obj in bindings:
        binding = Binding.from_json(obj)
        if not any(s.key in keys for s in binding.subjects):
            continue
        granted, error = await _referenced_rules(store, binding.role_kind, binding.role_name,
                                                 binding.namespace)
        rules.extend(granted)
        if error:
            errors.append(error)
    return rules, errors


async def _referenced_rules(store: Store, kind: str, name: str, namespace: str
                            ) -> tuple[tuple[PolicyRule, ...], str]:
    key, ns = (CLUSTERROLES, "") if kind == "ClusterRole" else (ROLES, namespace)
    if kind not in ("Role", "ClusterRole") or (kind == "Role" and not namespace):
        return (), f"unsupported role reference kind: {go_quote(kind)}"
    try:
        return compile_rules(await store.get(key, ns, name)), ""
    except NotFound:
        return (), f"{key} {go_quote(name)} not found"


async def _allowed(authorizer: Authorizer | None, user: UserInfo, verb: str, resource: str, name: str,
                   namespace: str) -> bool:
    if authorizer is None:
        return False
    attrs = Attributes(user=user, verb=verb, namespace=namespace, api_group=GROUP, api_version="*",
                       resource=resource, name=name)
    decision, _ = await authorizer.authorize(attrs)
    return decision is Decision.ALLOW


def only_gc_fields_changed(new: Obj, old: Obj) -> bool:
    """IsOnlyMutatingGCFields (rule 5)."""
    old_meta = old.get("metadata") or {}
    meta = {k: v for k, v in (new.get("metadata") or {}).items() if k not in _GC_FIELDS}
    meta.update({k: old_meta[k] for k in _GC_FIELDS if k in old_meta})
    return {**new, "metadata": meta} == old


# -- Covers (rule 6) ----------------------------------------------------------------------------------

def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """One rule per (group, resource, verb[, name]) and per (URL, verb)."""
    out = [PolicyRule((verb,), (group,), (resource,), (name,) if name else ())
           for group in rule.api_groups for resource in rule.resources for verb in rule.verbs
           for name in (rule.resource_names or ("",))]
    out += [PolicyRule((verb,), non_resource_urls=(url,))
            for url in rule.non_resource_urls for verb in rule.verbs]
    return out


def uncovered(owner: Sequence[PolicyRule], servant: Iterable[PolicyRule]) -> list[PolicyRule]:
    """Covers: the broken-down pieces of ``servant`` that no single ``owner`` rule covers."""
    return [piece for rule in servant for piece in breakdown(rule)
            if not any(_rule_covers(o, piece) for o in owner)]


def _rule_covers(owner: PolicyRule, piece: PolicyRule) -> bool:
    def has_all(have: tuple[str, ...], want: tuple[str, ...]) -> bool:
        return "*" in have or set(want) <= set(have)

    if not (has_all(owner.verbs, piece.verbs) and has_all(owner.api_groups, piece.api_groups)):
        return False
    for res in piece.resources:
        if not ("*" in owner.resources or res in owner.resources
                or ("/" in res and "*/" + res.split("/", 1)[1] in owner.resources)):
            return False
    for url in piece.non_resource_urls:
        if not any(o == url or (o.endswith("*") and url.startswith(o.rstrip("*")))
                   for o in owner.non_resource_urls):
            return False
    if piece.resource_names:
        return not owner.resource_names or set(piece.resource_names) <= set(owner.resource_names)
    return not owner.resource_names


def compact(rules: Iterable[PolicyRule]) -> list[PolicyRule]:
    """CompactRules: merge simple one-group/one-resource/at-most-one-name rules that differ in verbs."""
    simple: dict[tuple[str, str, tuple[str, ...]], list[str]] = {}
    out: list[PolicyRule] = []
    for r in rules:
        if len(r.api_groups) == 1 and len(r.resources) == 1 and len(r.resource_names) <= 1 \
                and not r.non_resource_urls:
            verbs = simple.setdefault((r.api_groups[0], r.resources[0], r.resource_names), [])
            verbs.extend(v for v in r.verbs if v not in verbs)
        else:
            out.append(r)
    out += [PolicyRule(tuple(v), (g,), (res,), names) for (g, res, names), v in simple.items()]
    return out


def compact_string(r: PolicyRule) -> str:
    """rbacv1helpers.CompactString: ``{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}``."""
    parts = [f"{label}:{go_quote_list(values)}" for label, values in (
        ("APIGroups", r.api_groups), ("Resources", r.resources), ("NonResourceURLs", r.non_resource_urls),
        ("ResourceNames", r.resource_names), ("Verbs", r.verbs)) if values]
    return "{" + ", ".join(parts) + "}"
