"""The NodeRestriction admission plugin (plugin/pkg/admission/noderestriction): a kubelet writes only its own.

The Node authorizer lets every node create/update/patch any Node, create/delete pods and patch any
pod's status, because it cannot see the object (a create has no name yet, and the graph knows nothing
of labels). This plugin, enabled with ``--enable-admission-plugins=NodeRestriction`` (kubeadm sets it;
it is not in the real default list), looks at the object and refuses, for users ``system:node:NAME``
in ``system:nodes``:

1. Nodes (any subresource): any Node but its own, ``node "n1" is not allowed to modify node "n2"``.
   On create, labels outside the kubelet's set (:func:`forbidden_labels`: ``node-restriction.kubernetes.io/``
   and ``kubernetes.io``/``k8s.io`` labels that are not kubelet labels) and a ``spec.configSource``; on
   update, changing such labels, ``spec.taints`` or setting a new ``spec.configSource``.
2. Pods: create only mirror pods (annotation ``kubernetes.io/config.mirror``) bound to itself, owned
   (controller reference, no blockOwnerDeletion) by its own Node object, and referencing no service
   account, secret, configmap, persistentvolumeclaim or clusterTrustBundle; delete only pods bound to
   itself; ``pods/status`` only of pods bound to itself and without changing their labels; nothing else.
3. ``serviceaccounts/token``: only bound to an existing pod (by name and uid) that runs on this node.
4. Leases: only in ``kube-node-lease`` and named like the node (create checks the object's name).
5. CertificateSigningRequests for the ``kubernetes.io/kubelet-serving`` and
   ``kubernetes.io/kube-apiserver-client-kubelet`` signers: only with ``CN=system:node:NAME``.

Left out (no such API here): ``pods/eviction``, ``persistentvolumeclaims/status``, CSINodes,
ResourceSlices and ResourceClaim statuses; the ServiceAccount plugin does not skip mirror pods.
"""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from miniapi import errors
from miniapi.admission.attributes import Attributes, Operation, forbidden
from miniapi.store import NotFound
from miniapi.store.base import Store
from miniapi.user import NODE_USER_PREFIX, NODES_GROUP

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_LEASE_NAMESPACE = "kube-node-lease"
NODE_RESTRICTION_NAMESPACE = "node-restriction.kubernetes.io"
KUBELET_SIGNERS = ("kubernetes.io/kubelet-serving", "kubernetes.io/kube-apiserver-client-kubelet")

# k8s.io/kubelet/pkg/apis: the kubernetes.io labels a kubelet may set on its own Node
KUBELET_LABELS = ("kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
                  "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
                  "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
                  "kubernetes.io/os", "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch")
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in_domain(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubernetes_label(key: str) -> bool:
    ns = _label_namespace(key)
    return _in_domain(ns, "kubernetes.io") or _in_domain(ns, "k8s.io")


def is_kubelet_label(key: str) -> bool:
    ns = _label_namespace(key)
    return key in KUBELET_LABELS or any(_in_domain(ns, d) for d in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(keys: set[str]) -> list[str]:
    """The label keys a node may not add, change or remove on its own Node, sorted."""
    return sorted(k for k in keys if _in_domain(_label_namespace(k), NODE_RESTRICTION_NAMESPACE)
                  or (is_kubernetes_label(k) and not is_kubelet_label(k)))


def modified_labels(new: dict[str, str], old: dict[str, str]) -> set[str]:
    return {k for k in set(new) | set(old) if new.get(k) != old.get(k)}


def node_name_of(attrs: Attributes) -> str | None:
    """NodeIdentity: the node's name for a node user ("" if unnamed), None for anyone else."""
    user = attrs.user
    if NODES_GROUP not in user.groups or not user.name.startswith(NODE_USER_PREFIX):
        return None
    return user.name[len(NODE_USER_PREFIX):]


def _meta(obj: dict[str, Any] | None) -> dict[str, Any]:
    return ((obj or {}).get("metadata") or {}) if isinstance(obj, dict) else {}


def _spec(obj: dict[str, Any] | None) -> dict[str, Any]:
    spec = (obj or {}).get("spec") if isinstance(obj, dict) else None
    return spec if isinstance(spec, dict) else {}


class NodeRestriction:
    """Rules 1-5; :meth:`admit` raises a 403 ApiError or returns."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def admit(self, attrs: Attributes) -> None:
        node = node_name_of(attrs)
        if node is None:
            return
        if not node:
            raise forbidden(attrs, f'could not determine node from user "{attrs.user.name}"')
        key = (attrs.group, attrs.resource)
        if key == ("", "pods"):
            await self._pod(node, attrs)
        elif key == ("", "nodes"):
            self._node(node, attrs)
        elif key == ("", "serviceaccounts"):
            await self._token(node, attrs)
        elif key == ("coordination.k8s.io", "leases"):
            self._lease(node, attrs)
        elif key == ("certificates.k8s.io", "certificatesigningrequests"):
            self._csr(node, attrs)

    # -- pods ---------------------------------------------------------------------------------------
    async def _pod(self, node: str, attrs: Attributes) -> None:
        sub, op = attrs.subresource, attrs.operation
        if sub == "status":
            if op is not Operation.UPDATE:
                raise forbidden(attrs, f'unexpected operation "{op.value}"')
            if _spec(attrs.old).get("nodeName") != node:
                raise forbidden(attrs, f'node "{node}" can only update pod status for pods with spec.nodeName '
                                       "set to itself")
            if (_meta(attrs.old).get("labels") or {}) != (_meta(attrs.obj).get("labels") or {}):
                raise forbidden(attrs, f'node "{node}" cannot update labels through pod status')
        elif sub:
            raise forbidden(attrs, f'unexpected pod subresource "{sub}", only \'status\' and \'eviction\' are '
                                   "allowed")
        elif op is Operation.CREATE:
            await self._mirror_pod(node, attrs)
        elif op is Operation.DELETE:
            pod = await self._get("pods", attrs.namespace, attrs.name)
            if _spec(pod).get("nodeName") != node:
                raise forbidden(attrs, f'node "{node}" can only delete pods with spec.nodeName set to itself')
        else:
            raise forbidden(attrs, f'unexpected operation "{op.value}", node "{node}" can only create and '
                                   "delete mirror pods")

    async def _mirror_pod(self, node: str, attrs: Attributes) -> None:
        pod, meta, spec = attrs.obj or {}, _meta(attrs.obj), _spec(attrs.obj)
        if MIRROR_POD_ANNOTATION not in (meta.get("annotations") or {}):
            raise forbidden(attrs, f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can '
                                   "only create mirror pods")
        if spec.get("nodeName") != node:
            raise forbidden(attrs, f'node "{node}" can only create pods with spec.nodeName set to itself')
        owners = meta.get("ownerReferences") or []
        if len(owners) > 1:
            raise forbidden(attrs, f'node "{node}" can only create pods with a single owner reference set to '
                                   "itself")
        owner = owners[0] if owners and isinstance(owners[0], dict) else None
        if owner is None or (owner.get("apiVersion"), owner.get("kind"), owner.get("name")) != ("v1", "Node", node):
            raise forbidden(attrs, f'node "{node}" can only create pods with an owner reference set to itself')
        if owner.get("controller") is not True:
            raise forbidden(attrs, f'node "{node}" can only create pods with a controller owner reference set '
                                   "to itself")
        if owner.get("blockOwnerDeletion") is True:
            raise forbidden(attrs, f'node "{node}" must not set blockOwnerDeletion on an owner reference')
        uid = _meta(await self._get("nodes", "", node)).get("uid")
        if owner.get("uid") != uid:
            raise forbidden(attrs, f"node {node} UID mismatch: expected {owner.get('uid') or ''} got {uid}")
        if why := _pod_references(pod):
            raise forbidden(attrs, f'node "{node}" can not create pods that reference {why}')

    # -- nodes --------------------------------------------------------------------------------------
    def _node(self, node: str, attrs: Attributes) -> None:
        if attrs.name != node:
            raise forbidden(attrs, f'node "{node}" is not allowed to modify node "{attrs.name}"')
        new_spec, new_labels = _spec(attrs.obj), _meta(attrs.obj).get("labels") or {}
        if attrs.operation is Operation.CREATE:
            if new_spec.get("configSource") is not None:
                raise forbidden(attrs, f'node "{node}" is not allowed to create pods with a non-nil configSource')
            if bad := forbidden_labels(set(new_labels)):
                raise forbidden(attrs, f'node "{node}" is not allowed to set the following labels: '
                                       f'{", ".join(bad)}')
        elif attrs.operation is Operation.UPDATE:
            old_spec, old_labels = _spec(attrs.old), _meta(attrs.old).get("labels") or {}
            if new_spec.get("configSource") is not None and new_spec["configSource"] != old_spec.get("configSource"):
                raise forbidden(attrs, f'node "{node}" is not allowed to update configSource to a new non-nil '
                                       "configSource")
            if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
                raise forbidden(attrs, f'node "{node}" is not allowed to modify taints')
            if bad := forbidden_labels(modified_labels(new_labels, old_labels)):
                raise forbidden(attrs, f'is not allowed to modify labels: {", ".join(bad)}')

    # -- service account tokens, leases, CSRs -----------------------------------------------------------
    async def _token(self, node: str, attrs: Attributes) -> None:
        if attrs.operation is not Operation.CREATE or attrs.subresource != "token":
            return
        ref = _spec(attrs.obj).get("boundObjectRef")
        ref = ref if isinstance(ref, dict) else {}
        if (ref.get("apiVersion"), ref.get("kind")) != ("v1", "Pod") or not ref.get("name"):
            raise forbidden(attrs, "node requested token not bound to a pod")
        if not ref.get("uid"):
            raise forbidden(attrs, "node requested token with a pod binding without a uid")
        pod = await self._get("pods", attrs.namespace, str(ref["name"]))
        if ref["uid"] != _meta(pod).get("uid"):
            raise forbidden(attrs, f"the UID in the bound object reference ({ref['uid']}) does not match the "
                                   "UID in record. The object might have been deleted and then recreated")
        if _spec(pod).get("nodeName") != node:
            raise forbidden(attrs, "node requested token bound to a pod scheduled on a different node")

    @staticmethod
    def _lease(node: str, attrs: Attributes) -> None:
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            raise forbidden(attrs, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
        name = _meta(attrs.obj).get("name") if attrs.operation is Operation.CREATE else attrs.name
        if name != node:
            raise forbidden(attrs, "can only access node lease with the same name as the requesting node")

    @staticmethod
    def _csr(node: str, attrs: Attributes) -> None:
        spec = _spec(attrs.obj)
        if attrs.operation is not Operation.CREATE or spec.get("signerName") not in KUBELET_SIGNERS:
            return
        try:
            csr = x509.load_pem_x509_csr(base64.b64decode(str(spec.get("request") or ""), validate=True))
            names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        except ValueError as exc:
            raise forbidden(attrs, f"unable to parse csr: {exc}") from None
        if [str(n.value) for n in names] != [f"{NODE_USER_PREFIX}{node}"]:
            raise forbidden(attrs, f"can only create a node CSR with CN={NODE_USER_PREFIX}{node}")

    async def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self.store.get(resource, namespace, name)
        except NotFound:
            raise errors.not_found(resource, name) from None
        return obj


def _pod_references(pod: dict[str, Any]) -> str:
    """What a mirror pod may not name: "a service account", "secrets", "configmaps", ... or ""."""
    from miniapi.authz.node import pod_references

    spec = _spec(pod)
    if spec.get("serviceAccountName"):
        return "a service account"
    kinds = {kind for kind, _, _ in pod_references({**pod, "spec": {**spec, "serviceAccountName": None}})}
    for kind in ("secrets", "configmaps"):
        if kind in kinds:
            return kind
    for volume in spec.get("volumes") or ():
        for source in ((volume.get("projected") or {}).get("sources") or ()) if isinstance(volume, dict) else ():
            if isinstance(source, dict) and source.get("clusterTrustBundle") is not None:
                return "clustertrustbundles"
    if any(isinstance(v, dict) and v.get("persistentVolumeClaim") for v in spec.get("volumes") or ()):
        return "persistentvolumeclaims"
    return ""
