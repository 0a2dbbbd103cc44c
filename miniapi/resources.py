"""The catalogue of resource types this apiserver serves: one row per resource, used by discovery,
request routing, OpenAPI, table printing and the store key (``resource.group``, like GroupResource).
"""

from __future__ import annotations

from dataclasses import dataclass

STANDARD_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)
PROXY = ("create", "delete", "get", "patch", "update")  # {nodes,pods,services}/proxy, as real discovery lists them


@dataclass(frozen=True)
class Subresource:
    name: str
    kind: str
    verbs: tuple[str, ...]
    group: str = ""
    version: str = "v1"


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    resource: str  # plural, e.g. "pods"
    kind: str
    namespaced: bool
    singular: str
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = STANDARD_VERBS
    subresources: tuple[Subresource, ...] = ()
    stored: bool = True  # False for virtual, create-only review kinds

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """Store key, GroupResource.String(): ``pods``, ``roles.rbac.authorization.k8s.io``."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def api_version(self) -> str:
        return self.group_version

    def subresource(self, name: str) -> Subresource | None:
        return next((s for s in self.subresources if s.name == name), None)


RBAC = "rbac.authorization.k8s.io"
CERTS = "certificates.k8s.io"
AUTHN = "authentication.k8s.io"
AUTHZ = "authorization.k8s.io"
COORD = "coordination.k8s.io"

_STATUS = ("get", "patch", "update")

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType("", "v1", "namespaces", "Namespace", False, "namespace", ("ns",),
                 ("create", "delete", "get", "list", "patch", "update", "watch"),
                 (Subresource("status", "Namespace", _STATUS),)),
    ResourceType("", "v1", "nodes", "Node", False, "node", ("no",), STANDARD_VERBS,
                 (Subresource("proxy", "NodeProxyOptions", PROXY),
                  Subresource("status", "Node", _STATUS))),
    ResourceType("", "v1", "pods", "Pod", True, "pod", ("po",), STANDARD_VERBS,
                 # exec/attach/portforward/proxy join with the kubelet paths (issues 4 and 5)
                 (Subresource("status", "Pod", _STATUS),
                  Subresource("binding", "Binding", CREATE_ONLY),
                  Subresource("log", "Pod", ("get",)),
                  Subresource("proxy", "PodProxyOptions", PROXY),
                  Subresource("exec", "PodExecOptions", ("create", "get")),
                  Subresource("attach", "PodAttachOptions", ("create", "get")),
                  Subresource("portforward", "PodPortForwardOptions", ("create", "get")))),
    ResourceType("", "v1", "services", "Service", True, "service", ("svc",),
                 ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
                 (Subresource("proxy", "ServiceProxyOptions", PROXY),
                  Subresource("status", "Service", _STATUS))),
    ResourceType("", "v1", "endpoints", "Endpoints", True, "endpoints", ("ep",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, "serviceaccount", ("sa",),
                 STANDARD_VERBS, (Subresource("token", "TokenRequest", CREATE_ONLY, AUTHN),)),
    ResourceType("", "v1", "secrets", "Secret", True, "secret"),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, "configmap", ("cm",)),
    ResourceType("", "v1", "events", "Event", True, "event", ("ev",)),
    ResourceType(COORD, "v1", "leases", "Lease", True, "lease"),
    ResourceType(CERTS, "v1", "certificatesigningrequests", "CertificateSigningRequest", False,
                 "certificatesigningrequest", ("csr",), STANDARD_VERBS,
                 (Subresource("approval", "CertificateSigningRequest", _STATUS, CERTS),
                  Subresource("status", "CertificateSigningRequest", _STATUS, CERTS))),
    ResourceType(RBAC, "v1", "roles", "Role", True, "role"),
    ResourceType(RBAC, "v1", "rolebindings", "RoleBinding", True, "rolebinding"),
    ResourceType(RBAC, "v1", "clusterroles", "ClusterRole", False, "clusterrole"),
    ResourceType(RBAC, "v1", "clusterrolebindings", "ClusterRoleBinding", False, "clusterrolebinding"),
    ResourceType(AUTHN, "v1", "tokenreviews", "TokenReview", False, "tokenreview", (), CREATE_ONLY,
                 stored=False),
    ResourceType(AUTHN, "v1", "selfsubjectreviews", "SelfSubjectReview", False, "selfsubjectreview", (),
                 CREATE_ONLY, stored=False),
    ResourceType(AUTHZ, "v1", "subjectaccessreviews", "SubjectAccessReview", False, "subjectaccessreview",
                 (), CREATE_ONLY, stored=False),
    ResourceType(AUTHZ, "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
                 "selfsubjectaccessreview", (), CREATE_ONLY, stored=False),
    ResourceType(AUTHZ, "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
                 "selfsubjectrulesreview", (), CREATE_ONLY, stored=False),
    ResourceType(AUTHZ, "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True,
                 "localsubjectaccessreview", (), CREATE_ONLY, stored=False),
)

GROUPS: tuple[str, ...] = ("", AUTHN, AUTHZ, CERTS, COORD, RBAC)

_BY_GROUP_RESOURCE = {(r.group, r.resource): r for r in RESOURCES}
_BY_KEY = {r.key: r for r in RESOURCES}
_BY_KIND = {(r.group, r.kind): r for r in RESOURCES}


def lookup(group: str, resource: str) -> ResourceType | None:
    return _BY_GROUP_RESOURCE.get((group, resource))


def by_key(key: str) -> ResourceType | None:
    return _BY_KEY.get(key)


def by_kind(group: str, kind: str) -> ResourceType | None:
    return _BY_KIND.get((group, kind))


def versions_of(group: str) -> tuple[str, ...]:
    return ("v1",) if group in GROUPS else ()
