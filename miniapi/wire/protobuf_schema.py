"""Field tables for the protobuf messages kubectl's typed clients send (see ``protobuf.py``).

Each message maps a field number to a :class:`Field`: the JSON name, the wire type family, and
for nested values the message name. Numbers are copied from the generated.proto files of
k8s.io/api (core/v1, certificates/v1, authorization/v1, authentication/v1, rbac/v1) and
k8s.io/apimachinery (pkg/apis/meta/v1, pkg/runtime), checked against bodies captured from
kubectl v1.37.1 (``tests/unit/wire/fixtures/kubectl_bodies.json``).

Go's generated marshaller writes every non-pointer field, zero or not (an empty name is
``0a 00``). JSON omits those zero values, so the decoder drops them too unless the Go field is a
pointer (``ptr=True``): a pointer is on the wire only when it was set, so ``immutable: false``
survives. ``managedFields`` (17) is deliberately absent: unknown fields are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

STRING, BYTES, BOOL, INT, TIME, MAP, STRINGS = "string", "bytes", "bool", "int", "time", "map", "strings"
SCALARS = frozenset({STRING, BYTES, BOOL, INT})


@dataclass(frozen=True)
class Field:
    """One field. ``type`` is a scalar, TIME, MAP, or a message name from MESSAGES.

    For MAP, ``value`` is STRING, BYTES or STRINGS (an ``ExtraValue``: message {1: repeated string}
    rendered in JSON as a plain list of strings).
    """

    name: str
    type: str
    repeated: bool = False
    ptr: bool = False
    value: str = STRING


def _f(name: str, type_: str = STRING, *, rep: bool = False, ptr: bool = False) -> Field:
    return Field(name, type_, repeated=rep, ptr=ptr)


def _map(name: str, value: str = STRING) -> Field:
    return Field(name, MAP, value=value)


_META = {1: _f("metadata", "ObjectMeta")}

MESSAGES: dict[str, dict[int, Field]] = {
    # k8s.io/apimachinery/pkg/apis/meta/v1
    "ObjectMeta": {
        1: _f("name"), 2: _f("generateName"), 3: _f("namespace"), 4: _f("selfLink"), 5: _f("uid"),
        6: _f("resourceVersion"), 7: _f("generation", INT), 8: _f("creationTimestamp", TIME),
        9: _f("deletionTimestamp", TIME), 10: _f("deletionGracePeriodSeconds", INT, ptr=True),
        11: _map("labels"), 12: _map("annotations"),
        13: _f("ownerReferences", "OwnerReference", rep=True), 14: _f("finalizers", rep=True),
    },
    "OwnerReference": {
        5: _f("apiVersion"), 1: _f("kind"), 3: _f("name"), 4: _f("uid"),
        6: _f("controller", BOOL, ptr=True), 7: _f("blockOwnerDeletion", BOOL, ptr=True),
    },
    "DeleteOptions": {
        1: _f("gracePeriodSeconds", INT, ptr=True), 2: _f("preconditions", "Preconditions", ptr=True),
        3: _f("orphanDependents", BOOL, ptr=True), 4: _f("propagationPolicy", ptr=True),
        5: _f("dryRun", rep=True),
    },
    "Preconditions": {1: _f("uid", ptr=True), 2: _f("resourceVersion", ptr=True)},
    # k8s.io/api/core/v1
    "Namespace": {**_META, 2: _f("spec", "NamespaceSpec"), 3: _f("status", "NamespaceStatus")},
    "NamespaceSpec": {1: _f("finalizers", rep=True)},
    "NamespaceStatus": {1: _f("phase"), 2: _f("conditions", "NamespaceCondition", rep=True)},
    "NamespaceCondition": {1: _f("type"), 2: _f("status"), 4: _f("lastTransitionTime", TIME),
                           5: _f("reason"), 6: _f("message")},
    "ConfigMap": {**_META, 2: _map("data"), 3: _map("binaryData", BYTES), 4: _f("immutable", BOOL, ptr=True)},
    "Secret": {**_META, 2: _map("data", BYTES), 3: _f("type"), 4: _map("stringData"),
               5: _f("immutable", BOOL, ptr=True)},
    "ServiceAccount": {**_META, 2: _f("secrets", "ObjectReference", rep=True),
                       3: _f("imagePullSecrets", "LocalObjectReference", rep=True),
                       4: _f("automountServiceAccountToken", BOOL, ptr=True)},
    "ObjectReference": {1: _f("kind"), 2: _f("namespace"), 3: _f("name"), 4: _f("uid"),
                        5: _f("apiVersion"), 6: _f("resourceVersion"), 7: _f("fieldPath")},
    "LocalObjectReference": {1: _f("name")},
    # k8s.io/api/authentication/v1
    "TokenRequest": {**_META, 2: _f("spec", "TokenRequestSpec"), 3: _f("status", "TokenRequestStatus")},
    "TokenRequestSpec": {1: _f("audiences", rep=True), 4: _f("expirationSeconds", INT, ptr=True),
                         3: _f("boundObjectRef", "BoundObjectReference", ptr=True)},
    "BoundObjectReference": {1: _f("kind"), 2: _f("apiVersion"), 3: _f("name"), 4: _f("uid")},
    "TokenRequestStatus": {1: _f("token"), 2: _f("expirationTimestamp", TIME)},
    "TokenReview": {**_META, 2: _f("spec", "TokenReviewSpec"), 3: _f("status", "TokenReviewStatus")},
    "TokenReviewSpec": {1: _f("token"), 2: _f("audiences", rep=True)},
    "TokenReviewStatus": {1: _f("authenticated", BOOL), 2: _f("user", "UserInfo"),
                          4: _f("audiences", rep=True), 3: _f("error")},
    "UserInfo": {1: _f("username"), 2: _f("uid"), 3: _f("groups", rep=True), 4: _map("extra", STRINGS)},
    "SelfSubjectReview": {**_META, 2: _f("status", "SelfSubjectReviewStatus")},
    "SelfSubjectReviewStatus": {1: _f("userInfo", "UserInfo")},
    # k8s.io/api/authorization/v1
    "SelfSubjectAccessReview": {**_META, 2: _f("spec", "SelfSubjectAccessReviewSpec"),
                                3: _f("status", "SubjectAccessReviewStatus")},
    "SelfSubjectAccessReviewSpec": {1: _f("resourceAttributes", "ResourceAttributes", ptr=True),
                                    2: _f("nonResourceAttributes", "NonResourceAttributes", ptr=True)},
    "SubjectAccessReview": {**_META, 2: _f("spec", "SubjectAccessReviewSpec"),
                            3: _f("status", "SubjectAccessReviewStatus")},
    "SubjectAccessReviewSpec": {
        1: _f("resourceAttributes", "ResourceAttributes", ptr=True),
        2: _f("nonResourceAttributes", "NonResourceAttributes", ptr=True),
        3: _f("user"), 4: _f("groups", rep=True), 5: _map("extra", STRINGS), 6: _f("uid"),
    },
    "ResourceAttributes": {1: _f("namespace"), 2: _f("verb"), 3: _f("group"), 4: _f("version"),
                           5: _f("resource"), 6: _f("subresource"), 7: _f("name")},
    "NonResourceAttributes": {1: _f("path"), 2: _f("verb")},
    "SubjectAccessReviewStatus": {1: _f("allowed", BOOL), 4: _f("denied", BOOL), 2: _f("reason"),
                                  3: _f("evaluationError")},
    "SelfSubjectRulesReview": {**_META, 2: _f("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: _f("namespace")},
    # k8s.io/api/certificates/v1
    "CertificateSigningRequest": {**_META, 2: _f("spec", "CertificateSigningRequestSpec"),
                                  3: _f("status", "CertificateSigningRequestStatus")},
    "CertificateSigningRequestSpec": {
        1: _f("request", BYTES), 7: _f("signerName"), 8: _f("expirationSeconds", INT, ptr=True),
        5: _f("usages", rep=True), 2: _f("username"), 3: _f("uid"), 4: _f("groups", rep=True),
        6: _map("extra", STRINGS),
    },
    "CertificateSigningRequestStatus": {1: _f("conditions", "CertificateSigningRequestCondition", rep=True),
                                        2: _f("certificate", BYTES)},
    "CertificateSigningRequestCondition": {1: _f("type"), 6: _f("status"), 2: _f("reason"), 3: _f("message"),
                                           4: _f("lastUpdateTime", TIME), 5: _f("lastTransitionTime", TIME)},
    # k8s.io/api/rbac/v1 (kubectl create role|rolebinding|clusterrole|clusterrolebinding)
    "Role": {**_META, 2: _f("rules", "PolicyRule", rep=True)},
    "ClusterRole": {**_META, 2: _f("rules", "PolicyRule", rep=True),
                    3: _f("aggregationRule", "AggregationRule", ptr=True)},
    "PolicyRule": {1: _f("verbs", rep=True), 2: _f("apiGroups", rep=True), 3: _f("resources", rep=True),
                   4: _f("resourceNames", rep=True), 5: _f("nonResourceURLs", rep=True)},
    "AggregationRule": {1: _f("clusterRoleSelectors", "LabelSelector", rep=True)},
    "LabelSelector": {1: _map("matchLabels"), 2: _f("matchExpressions", "LabelSelectorRequirement", rep=True)},
    "LabelSelectorRequirement": {1: _f("key"), 2: _f("operator"), 3: _f("values", rep=True)},
    "RoleBinding": {**_META, 2: _f("subjects", "Subject", rep=True), 3: _f("roleRef", "RoleRef")},
    "Subject": {1: _f("kind"), 2: _f("apiGroup"), 3: _f("name"), 4: _f("namespace")},
    "RoleRef": {1: _f("apiGroup"), 2: _f("kind"), 3: _f("name")},
}

_AUTHN, _AUTHZ, _CERTS = "authentication.k8s.io/v1", "authorization.k8s.io/v1", "certificates.k8s.io/v1"
_RBAC = "rbac.authorization.k8s.io/v1"

# (apiVersion, kind) of the runtime.Unknown envelope -> top-level message name.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "DeleteOptions"): "DeleteOptions",
    ("meta.k8s.io/v1", "DeleteOptions"): "DeleteOptions",
    (_AUTHN, "TokenRequest"): "TokenRequest",
    (_AUTHN, "TokenReview"): "TokenReview",
    (_AUTHN, "SelfSubjectReview"): "SelfSubjectReview",
    (_AUTHZ, "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    (_AUTHZ, "SubjectAccessReview"): "SubjectAccessReview",
    (_AUTHZ, "LocalSubjectAccessReview"): "SubjectAccessReview",
    (_AUTHZ, "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    (_CERTS, "CertificateSigningRequest"): "CertificateSigningRequest",
    (_RBAC, "Role"): "Role",
    (_RBAC, "ClusterRole"): "ClusterRole",
    (_RBAC, "RoleBinding"): "RoleBinding",
    (_RBAC, "ClusterRoleBinding"): "RoleBinding",
}
