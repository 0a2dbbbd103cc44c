"""The default RBAC policy: the ClusterRoles and ClusterRoleBindings a fresh apiserver creates
(plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, the ``rbac/bootstrap-roles`` hook).

Every object carries the label ``kubernetes.io/bootstrapping: rbac-defaults`` and the annotation
``rbac.authorization.kubernetes.io/autoupdate: "true"``.

1. ``cluster-admin`` (everything) is bound to the group ``system:masters``.
2. ``system:discovery`` (discovery + health URLs) and ``system:basic-user`` (self reviews) are bound
   to ``system:authenticated``; ``system:public-info-viewer`` (``/healthz``, ``/livez``, ``/readyz``,
   ``/version``) to ``system:authenticated`` and ``system:unauthenticated``, so anonymous can probe
   health but nothing else.
3. ``admin`` / ``edit`` / ``view`` carry an aggregationRule as in kube; their rules are the union of
   the ``system:aggregate-to-*`` roles, filled in here because we run no aggregation controller.
   Only the core, apps and batch parts of kube's lists are kept.
4. ``system:node`` exists (the Node authorizer reuses its rules); its binding has no subjects, as in
   kube since 1.8: nodes are authorized by the Node authorizer, not RBAC.
5. Certificates: ``system:node-bootstrapper`` (create and watch CSRs) and the CSR auto-approval roles
   ``...:nodeclient`` / ``...:selfnodeclient``. Bound kubeadm-style (kubeadm binds its token group
   ``system:bootstrappers:kubeadm:default-node-token``; we bind the generic ``system:bootstrappers``):
   bootstrappers -> node-bootstrapper and nodeclient, ``system:nodes`` -> selfnodeclient.
6. Kubelet API: ``system:kubelet-api-admin`` (unbound, as in kube) and
   ``system:kube-apiserver-to-kubelet`` (the "Kubernetes The Hard Way" role: nodes/proxy, stats, log,
   spec, metrics) bound to the apiserver's kubelet client cert user ``kube-apiserver-kubelet-client``.
7. ``system:kube-controller-manager`` bound to the user of that name. Kube also runs each controller
   under its own ``system:controller:*`` role; we fold in what our controllers need instead: the
   certificate controller's (approve and sign CSRs), root-ca-cert-publisher's (write configmaps),
   node-controller's (update nodes and nodes/status), endpoint-controller's (read services and pods,
   write endpoints) and kube-scheduler's (pods/binding, pods/status),
   since our scheduler runs inside the controller-manager.
8. ``system:node-proxier`` -> ``system:kube-proxy``, ``system:monitoring`` -> group
   ``system:monitoring``, ``system:service-account-issuer-discovery`` -> ``system:serviceaccounts``.
9. ``ensure_default_policy`` creates what is missing and reconciles existing objects whose autoupdate
   annotation is not ``"false"``: missing rules, subjects, labels and annotations are added (nothing
   is removed); a binding whose roleRef changed is recreated.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from miniapi.authz.escalation import uncovered
from miniapi.authz.rbac import CLUSTERROLEBINDINGS, CLUSTERROLES, GROUP, PolicyRule
from miniapi.store.base import AlreadyExists, NotFound, Obj, Store

log = logging.getLogger("miniapi.authz.policy")

LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
READ = ("get", "list", "watch")
WRITE = ("create", "update", "patch", "delete", "deletecollection")
READ_WRITE = READ + WRITE
CORE, APPS, BATCH, CERTS = "", "apps", "batch", "certificates.k8s.io"
AUTHN, AUTHZ, COORD = "authentication.k8s.io", "authorization.k8s.io", "coordination.k8s.io"
SIGNERS = ("kubernetes.io/kube-apiserver-client", "kubernetes.io/kube-apiserver-client-kubelet",
           "kubernetes.io/kubelet-serving", "kubernetes.io/legacy-unknown")
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"


def rule(verbs: tuple[str, ...] | str, groups: tuple[str, ...] | str = (), resources: tuple[str, ...] = (),
         names: tuple[str, ...] = (), urls: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """A PolicyRule as JSON (rbacv1helpers.NewRule(...).Groups(...).Resources(...))."""
    out = {"verbs": [verbs] if isinstance(verbs, str) else list(verbs)}
    if urls:
        return {**out, "nonResourceURLs": list(urls)}
    out["apiGroups"] = [groups] if isinstance(groups, str) else list(groups)
    out["resources"] = list(resources)
    if names:
        out["resourceNames"] = list(names)
    return out


def _events() -> dict[str, list[str]]:
    return rule(("create", "update", "patch"), (CORE, "events.k8s.io"), ("events",))


def node_rules() -> list[dict[str, list[str]]]:
    """NodeRules(): what system:node grants, and what the Node authorizer allows outside its graph."""
    return [
        rule("create", AUTHN, ("tokenreviews",)),
        rule("create", AUTHZ, ("subjectaccessreviews", "localsubjectaccessreviews")),
        rule(READ, CORE, ("services",)),
        rule(("create", "get", "list", "watch"), CORE, ("nodes",)),
        rule(("update", "patch"), CORE, ("nodes/status",)),
        rule(("update", "patch"), CORE, ("nodes",)),
        rule(("create", "update", "patch"), CORE, ("events",)),
        rule(READ, CORE, ("pods",)),
        rule(("create", "delete"), CORE, ("pods",)),
        rule(("update", "patch"), CORE, ("pods/status",)),
        rule("create", CORE, ("pods/eviction",)),
        rule(READ, CORE, ("secrets", "configmaps")),
        rule("get", CORE, ("persistentvolumeclaims", "persistentvolumes")),
        rule("get", CORE, ("endpoints",)),
        rule(("create", "get", "list", "watch"), CERTS, ("certificatesigningrequests",)),
        rule(("get", "create", "update", "patch", "delete"), COORD, ("leases",)),
        rule("create", CORE, ("serviceaccounts/token",)),
        rule(("get", "update", "patch"), CORE, ("persistentvolumeclaims/status",)),
    ]


def _aggregate_rules() -> dict[str, list[dict[str, list[str]]]]:
    pod_exec = ("pods/attach", "pods/proxy", "pods/exec", "pods/portforward")
    return {
        "view": [
            rule(READ, CORE, ("pods", "replicationcontrollers", "replicationcontrollers/scale",
                              "serviceaccounts", "services", "services/status", "endpoints",
                              "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps")),
            rule(READ, CORE, ("limitranges", "resourcequotas", "bindings", "events", "pods/status",
                              "resourcequotas/status", "namespaces/status", "replicationcontrollers/status",
                              "pods/log")),
            rule(READ, CORE, ("namespaces",)),
            rule(READ, APPS, ("controllerrevisions", "statefulsets", "statefulsets/status",
                              "statefulsets/scale", "daemonsets", "daemonsets/status", "deployments",
                              "deployments/status", "deployments/scale", "replicasets", "replicasets/status",
                              "replicasets/scale")),
            rule(READ, BATCH, ("jobs", "cronjobs", "cronjobs/status", "jobs/status")),
        ],
        "edit": [
            rule(READ, CORE, (*pod_exec, "secrets", "services/proxy")),
            rule("impersonate", CORE, ("serviceaccounts",)),
            rule(WRITE, CORE, ("pods", *pod_exec)),
            rule("create", CORE, ("pods/eviction",)),
            rule(WRITE, CORE, ("replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                               "services", "services/proxy", "persistentvolumeclaims", "configmaps",
                               "secrets")),
            rule("create", CORE, ("serviceaccounts/token",)),
            rule(WRITE, APPS, ("statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                               "deployments/scale", "deployments/rollback", "replicasets",
                               "replicasets/scale")),
            rule(WRITE, BATCH, ("jobs", "cronjobs")),
        ],
        "admin": [
            rule("create", AUTHZ, ("localsubjectaccessreviews",)),
            rule(READ_WRITE, GROUP, ("roles", "rolebindings")),
        ],
    }


def _role(name: str, rules: list[dict[str, list[str]]], labels: dict[str, str] | None = None,
          aggregate_from: str = "") -> Obj:
    obj: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
                "metadata": {"name": name, "labels": {**(labels or {}), **LABEL},
                             "annotations": {AUTOUPDATE: "true"}},
                "rules": rules}
    if aggregate_from:
        selector = {"matchLabels": {AGGREGATE + aggregate_from: "true"}}
        obj["aggregationRule"] = {"clusterRoleSelectors": [selector]}
    return obj


def cluster_roles() -> list[Obj]:
    agg = _aggregate_rules()
    view, edit = agg["view"], agg["edit"] + agg["view"]
    health = ("/livez", "/readyz", "/healthz", "/version", "/version/")
    return [
        _role("cluster-admin", [rule("*", "*", ("*",)), rule("*", urls=("*",))]),
        _role("system:discovery", [rule("get", urls=(*health, "/openapi", "/openapi/*", "/api", "/api/*",
                                                      "/apis", "/apis/*"))]),
        _role("system:basic-user", [
            rule("create", AUTHZ, ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            rule("create", AUTHN, ("selfsubjectreviews",))]),
        _role("system:public-info-viewer", [rule("get", urls=health)]),
        _role("system:monitoring", [rule("get", urls=(
            "/metrics", "/metrics/slis", "/livez", "/readyz", "/healthz",
            "/livez/*", "/readyz/*", "/healthz/*"))]),
        _role("admin", edit + agg["admin"], aggregate_from="admin"),
        _role("edit", edit, {AGGREGATE + "admin": "true"}, aggregate_from="edit"),
        _role("view", view, {AGGREGATE + "edit": "true"}, aggregate_from="view"),
        _role("system:aggregate-to-admin", agg["admin"], {AGGREGATE + "admin": "true"}),
        _role("system:aggregate-to-edit", agg["edit"], {AGGREGATE + "edit": "true"}),
        _role("system:aggregate-to-view", agg["view"], {AGGREGATE + "view": "true"}),
        _role("system:node", node_rules()),
        _role("system:node-proxier", [rule(("list", "watch"), CORE, ("services", "endpoints")),
                                      rule(READ, CORE, ("nodes",)), _events(),
                                      rule(("list", "watch"), "discovery.k8s.io", ("endpointslices",))]),
        _role("system:node-bootstrapper", [rule(("create", "get", "list", "watch"), CERTS,
                                                ("certificatesigningrequests",))]),
        _role("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
              [rule("create", CERTS, ("certificatesigningrequests/nodeclient",))]),
        _role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
              [rule("create", CERTS, ("certificatesigningrequests/selfnodeclient",))]),
        _role("system:kubelet-api-admin", [
            rule(READ, CORE, ("nodes",)), rule("proxy", CORE, ("nodes",)),
            rule("*", CORE, ("nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log"))]),
        _role("system:kube-apiserver-to-kubelet", [
            rule("*", CORE, ("nodes/proxy", "nodes/stats", "nodes/log", "nodes/spec", "nodes/metrics"))]),
        _role("system:kube-controller-manager", _controller_manager_rules()),
        _role("system:service-account-issuer-discovery", [rule("get", urls=(
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"))]),
    ]


def _controller_manager_rules() -> list[dict[str, list[str]]]:
    return [
        _events(),
        rule("create", COORD, ("leases",)),
        rule(("get", "update"), COORD, ("leases",), names=("kube-controller-manager",)),
        rule("create", CORE, ("secrets", "serviceaccounts")),
        rule("delete", CORE, ("secrets",)),
        rule("get", CORE, ("namespaces", "secrets", "serviceaccounts", "configmaps")),
        rule("update", CORE, ("secrets", "serviceaccounts")),
        rule("create", AUTHN, ("tokenreviews",)),
        rule("create", AUTHZ, ("subjectaccessreviews",)),
        rule(("list", "watch"), "*", ("*",)),
        rule("create", CORE, ("serviceaccounts/token",)),
        # folded in from system:controller:certificate-controller (rule 7)
        rule(("get", "list", "watch", "delete"), CERTS, ("certificatesigningrequests",)),
        rule("update", CERTS, ("certificatesigningrequests/status", "certificatesigningrequests/approval")),
        rule("approve", CERTS, ("signers",), names=("kubernetes.io/kube-apiserver-client-kubelet",)),
        rule("sign", CERTS, ("signers",), names=SIGNERS),
        # folded in from root-ca-cert-publisher, node-controller and (in-process) system:kube-scheduler
        rule(("create", "update"), CORE, ("configmaps",)),
        rule(("update", "patch"), CORE, ("nodes", "nodes/status")),
        rule("create", CORE, ("pods/binding", "bindings")),
        rule(("update", "patch"), CORE, ("pods/status",)),
        # folded in from system:controller:endpoint-controller
        rule(READ, CORE, ("services", "pods")),
        rule(("create", "update", "delete"), CORE, ("endpoints",)),
    ]


def _binding(name: str, role: str, *, users: tuple[str, ...] = (), groups: tuple[str, ...] = (),
             sas: tuple[tuple[str, str], ...] = ()) -> Obj:
    subjects: list[dict[str, str]] = [{"kind": "User", "apiGroup": GROUP, "name": u} for u in users]
    subjects += [{"kind": "Group", "apiGroup": GROUP, "name": g} for g in groups]
    subjects += [{"kind": "ServiceAccount", "name": n, "namespace": ns} for ns, n in sas]
    obj: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name, "labels": dict(LABEL), "annotations": {AUTOUPDATE: "true"}},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}}
    if subjects:
        obj["subjects"] = subjects
    return obj


def cluster_role_bindings() -> list[Obj]:
    nodeclient = "system:certificates.k8s.io:certificatesigningrequests:nodeclient"
    return [
        _binding("cluster-admin", "cluster-admin", groups=("system:masters",)),
        _binding("system:discovery", "system:discovery", groups=("system:authenticated",)),
        _binding("system:basic-user", "system:basic-user", groups=("system:authenticated",)),
        _binding("system:public-info-viewer", "system:public-info-viewer",
                 groups=("system:authenticated", "system:unauthenticated")),
        _binding("system:monitoring", "system:monitoring", groups=("system:monitoring",)),
        _binding("system:node", "system:node"),
        _binding("system:node-proxier", "system:node-proxier", users=("system:kube-proxy",)),
        _binding("system:kube-controller-manager", "system:kube-controller-manager",
                 users=("system:kube-controller-manager",)),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 groups=("system:serviceaccounts",)),
        _binding("kubeadm:kubelet-bootstrap", "system:node-bootstrapper", groups=("system:bootstrappers",)),
        _binding("kubeadm:node-autoapprove-bootstrap", nodeclient, groups=("system:bootstrappers",)),
        _binding("kubeadm:node-autoapprove-certificate-rotation",
                 "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                 groups=("system:nodes",)),
        _binding("system:kube-apiserver-to-kubelet", "system:kube-apiserver-to-kubelet",
                 users=("kube-apiserver-kubelet-client",)),
    ]


# -- reconciliation (rule 9) --------------------------------------------------------------------------

async def ensure_default_policy(store: Store) -> None:
    for key, wanted in ((CLUSTERROLES, cluster_roles()), (CLUSTERROLEBINDINGS, cluster_role_bindings())):
        for obj in wanted:
            await _ensure(store, key, obj)


async def _ensure(store: Store, key: str, want: Obj) -> None:
    name = want["metadata"]["name"]
    try:
        have = await store.get(key, "", name)
    except NotFound:
        try:
            await store.create(key, _stamped(want))
            log.info("created %s %s", key, name)
        except AlreadyExists:
            pass
        return
    if (have["metadata"].get("annotations") or {}).get(AUTOUPDATE) == "false":
        return
    if key == CLUSTERROLEBINDINGS and have.get("roleRef") != want["roleRef"]:
        await store.delete(key, "", name)
        await store.create(key, _stamped(want))
        log.info("recreated %s %s (roleRef changed)", key, name)
        return
    merged = _merge(have, want, key)
    if merged != have:
        await store.update(key, merged)
        log.info("reconciled %s %s", key, name)


def _merge(have: Obj, want: Obj, key: str) -> Obj:
    meta = dict(have["metadata"])
    for field in ("labels", "annotations"):
        meta[field] = {**want["metadata"].get(field, {}), **(meta.get(field) or {})}
    out: Obj = {**have, "metadata": meta}
    if key == CLUSTERROLES:
        have_rules = [PolicyRule.from_json(r) for r in have.get("rules") or ()]
        missing = uncovered(have_rules, [PolicyRule.from_json(r) for r in want.get("rules") or ()])
        if missing:
            out["rules"] = list(have.get("rules") or ()) + [_rule_json(r) for r in missing]
        if want.get("aggregationRule") and not have.get("aggregationRule"):
            out["aggregationRule"] = want["aggregationRule"]
    else:
        subjects = list(have.get("subjects") or ())
        subjects += [s for s in want.get("subjects") or () if s not in subjects]
        if subjects:
            out["subjects"] = subjects
    return out


def _rule_json(r: PolicyRule) -> dict[str, Any]:
    if r.non_resource_urls:
        return rule(r.verbs, urls=r.non_resource_urls)
    return rule(r.verbs, r.api_groups, r.resources, r.resource_names)


def _stamped(obj: Obj) -> Obj:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**obj, "metadata": {**obj["metadata"], "uid": str(uuid.uuid4()), "creationTimestamp": now}}
