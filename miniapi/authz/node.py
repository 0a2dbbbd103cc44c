"""The Node authorizer (plugin/pkg/auth/authorizer/node): what a kubelet may touch, judged from a graph
of which pods are bound to it and what those pods reference.

The graph comes from a list + watch of pods (:class:`~miniapi.authz.informer.Informers`): every pod
with ``spec.nodeName`` links the node to the pod and to the secrets, configmaps, serviceaccount and
persistentvolumeclaims it names (volumes incl. projected sources and any ``secretRef``, env
``valueFrom``, ``envFrom``, ``imagePullSecrets`` of all container kinds, ``serviceAccountName``).

1. Only for nodes: users in group ``system:nodes`` named ``system:node:NAME``; anyone else gets
   NO_OPINION with no reason (RBAC or another authorizer decides).
2. Nodes: create/get/list/watch any Node, update/patch any Node and ``nodes/status`` (the system:node
   rules, as kube without the ``AuthorizeNodeWithSelectors`` gate; with it, kube >= 1.32 limits reads
   to the node's own object, which needs the request's field selector our Attributes do not carry).
   Which Node a kubelet may change is for the NodeRestriction admission plugin
   (:mod:`miniapi.admission.noderestriction`), which sees the name and the object.
3. Pods: get/list/watch any pod; create and delete pods (mirror pods), update/patch ``pods/status``,
   create ``pods/eviction``: again the static rules, with NodeRestriction limiting them to the node's
   own pods (kube >= 1.32 also asks for a ``spec.nodeName=NAME`` field selector on list/watch).
4. Secrets and configmaps: get/list/watch of one named object in a namespace, only if a pod bound to
   this node references it.
5. ServiceAccounts: create ``serviceaccounts/token`` for, and get, a serviceaccount a pod on this node
   runs as (kube allows only the token; get is our addition for the kubelet).
6. PersistentVolumeClaims: get, and update/patch of ``persistentvolumeclaims/status``, only if
   referenced by a pod on this node.
7. Leases: get/create/update/patch/delete in ``kube-node-lease``, named like the node (create unchecked).
8. Anything else is judged against the system:node ClusterRole's static rules
   (:func:`~miniapi.authz.policy.node_rules`): services read, endpoints get, events create/update/patch,
   CSRs create/get/list/watch (certificate rotation), tokenreviews and subjectaccessreviews create.
9. A refusal is NO_OPINION with a reason, e.g. ``no relationship found between node 'n1' and this
   object``; an allow has no reason, as in kube.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from miniapi.authz.base import Attributes, Decision, Revision, RulesResult
from miniapi.authz.informer import Informers, ref
from miniapi.authz.policy import node_rules
from miniapi.authz.rbac import PolicyRule, go_quote
from miniapi.store.base import Obj, Store
from miniapi.user import NODE_USER_PREFIX, NODES_GROUP, UserInfo

NODE_LEASE_NAMESPACE = "kube-node-lease"
_Vertex = tuple[str, str, str]  # (kind, namespace, name); kind is the resource: secrets, configmaps, ...
_NO = Decision.NO_OPINION


def pod_references(pod: Obj) -> set[_Vertex]:
    """Everything a pod makes its node need (the graph's edges towards the node)."""
    ns = str((pod.get("metadata") or {}).get("namespace") or "")
    spec: dict[str, Any] = pod.get("spec") or {}
    out: set[_Vertex] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            out.add((kind, ns, name))

    sa = spec.get("serviceAccountName") or spec.get("serviceAccount")
    add("serviceaccounts", sa)
    for secret in spec.get("imagePullSecrets") or ():
        add("secrets", (secret or {}).get("name"))
    for volume in spec.get("volumes") or ():
        add("secrets", (volume.get("secret") or {}).get("secretName"))
        add("configmaps", (volume.get("configMap") or {}).get("name"))
        add("persistentvolumeclaims", (volume.get("persistentVolumeClaim") or {}).get("claimName"))
        if volume.get("ephemeral"):
            add("persistentvolumeclaims", f"{(pod.get('metadata') or {}).get('name')}-{volume.get('name')}")
        for source in ((volume.get("projected") or {}).get("sources") or ()):
            add("secrets", (source.get("secret") or {}).get("name"))
            add("configmaps", (source.get("configMap") or {}).get("name"))
        for value in volume.values():  # cephfs, rbd, iscsi, csi... name their secret in a secretRef
            if isinstance(value, dict):
                secret_ref = value.get("secretRef") or value.get("nodePublishSecretRef") or {}
                add("secrets", secret_ref.get("name"))
                add("secrets", value.get("secretName") if "shareName" in value else None)  # azureFile
    for container in _containers(spec):
        for env in container.get("env") or ():
            source = env.get("valueFrom") or {}
            add("secrets", (source.get("secretKeyRef") or {}).get("name"))
            add("configmaps", (source.get("configMapKeyRef") or {}).get("name"))
        for env_from in container.get("envFrom") or ():
            add("secrets", (env_from.get("secretRef") or {}).get("name"))
            add("configmaps", (env_from.get("configMapRef") or {}).get("name"))
    return out


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        yield from (c for c in spec.get(field) or () if isinstance(c, dict))


class NodeAuthorizer:
    """Authorizer and RuleResolver for kubelets (rules 1-9)."""

    name = "Node"

    def __init__(self, store: Store) -> None:
        self._pods: dict[tuple[str, str], tuple[str, frozenset[_Vertex]]] = {}  # -> (node, references)
        self._edges: dict[_Vertex, dict[str, int]] = {}  # vertex -> {node: number of pods}
        self._static = tuple(PolicyRule.from_json(r) for r in node_rules())
        self._handlers = {("", "secrets"): self._read_object, ("", "configmaps"): self._read_object,
                          ("", "serviceaccounts"): self._serviceaccounts,
                          ("", "persistentvolumeclaims"): self._pvcs,
                          ("coordination.k8s.io", "leases"): self._lease}
        self._informers = Informers(store, ("pods",), self._apply, self._replace)
        self.revision = Revision()  # bumped when the graph changes (the union's cache)

    async def start(self) -> None:
        await self._informers.start()

    async def stop(self) -> None:
        await self._informers.stop()

    async def synced(self, timeout: float = 5.0) -> None:
        await self._informers.synced(timeout)

    # -- the graph ----------------------------------------------------------------------------------

    def _replace(self, key: str, objs: list[Obj]) -> None:
        self.revision.bump()
        self._pods.clear()
        self._edges.clear()
        for obj in objs:
            self._apply(key, "ADDED", obj)

    def _apply(self, key: str, type_: str, pod: Obj) -> None:
        pod_ref = ref(pod)
        old = self._pods.pop(pod_ref, None)
        if old is not None:
            self._link(old[0], old[1], -1)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        new = None
        if type_ != "DELETED" and node:
            new = (node, frozenset(pod_references(pod) | {("pods", *pod_ref)}))
            self._pods[pod_ref] = new
            self._link(*new, +1)
        if new != old:  # a pod's status update leaves the graph as it was
            self.revision.bump()

    def _link(self, node: str, vertices: frozenset[_Vertex], delta: int) -> None:
        for vertex in vertices:
            nodes = self._edges.setdefault(vertex, {})
            nodes[node] = nodes.get(node, 0) + delta
            if nodes[node] <= 0:
                del nodes[node]
                if not nodes:
                    del self._edges[vertex]

    def related(self, node: str, kind: str, namespace: str, name: str) -> bool:
        return node in self._edges.get((kind, namespace, name), {})

    # -- decisions ----------------------------------------------------------------------------------

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]:
        user = attrs.user
        if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
            return _NO, ""
        node = user.name[len(NODE_USER_PREFIX):]
        if not node:
            return _NO, f"unknown node for user {go_quote(user.name)}"
        if attrs.is_resource_request:
            handler = self._handlers.get((attrs.api_group, attrs.resource))
            if handler is not None:
                return handler(node, attrs)
        if any(rule.allows(attrs) for rule in self._static):
            return Decision.ALLOW, ""
        return _NO, ""

    def _relation(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if not attrs.name:
            return _NO, "No Object name found"
        if self.related(node, attrs.resource, attrs.namespace, attrs.name):
            return Decision.ALLOW, ""
        return _NO, f"no relationship found between node '{node}' and this object"

    def _read_object(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "list", "watch"):
            return _NO, "can only read resources of this type"
        if attrs.subresource:
            return _NO, "cannot read subresource"
        if not attrs.namespace:
            return _NO, "can only read namespaced object of this type"
        return self._relation(node, attrs)

    def _serviceaccounts(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.subresource == "" and attrs.verb == "get":
            return self._relation(node, attrs)
        if attrs.verb != "create" or not attrs.name:
            return _NO, "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return _NO, "can only create token subresource of serviceaccount"
        return self._relation(node, attrs)

    def _pvcs(self, node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.subresource == "status":
            if attrs.verb not in ("update", "patch"):
                return _NO, "can only get/update/patch this type"
        elif attrs.verb != "get":
            return _NO, "can only get individual resources of this type"
        elif attrs.subresource:
            return _NO, "cannot get subresource"
        return self._relation(node, attrs)

    @staticmethod
    def _lease(node: str, attrs: Attributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return _NO, "can only get, create, update, patch, or delete a node lease"
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return _NO, f"can only access leases in the {go_quote(NODE_LEASE_NAMESPACE)} system namespace"
        if attrs.verb != "create" and attrs.name != node:
            return _NO, "can only access node lease with the same name as the requesting node"
        return Decision.ALLOW, ""

    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult:
        if NODES_GROUP in user.groups and user.name.startswith(NODE_USER_PREFIX):
            return RulesResult(incomplete=True,
                               evaluation_error="node authorizer does not support user rule resolution")
        return RulesResult()
