"""The real kubectl against discovery + OpenAPI v3 from our pure modules: default strict validation
must be delegated to the server (``fieldValidation=Strict``), with no ``--validate=false``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.discovery.conftest import Stub, needs_kubectl

pytestmark = needs_kubectl

MANIFESTS = {
    "pod": ("""
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: default}
spec:
  containers: [{name: c, image: nginx}]
""", "/api/v1/namespaces/default/pods", "pod/p1 created"),
    "configmap": ("""
apiVersion: v1
kind: ConfigMap
metadata: {name: cm1}
data: {a: "1"}
""", "/api/v1/namespaces/default/configmaps", "configmap/cm1 created"),
    "rolebinding": ("""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb1, namespace: dev}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
""", "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        "rolebinding.rbac.authorization.k8s.io/rb1 created"),
    "csr": ("""
apiVersion: certificates.k8s.io/v1
kind: CertificateSigningRequest
metadata: {name: csr1}
spec: {request: AAAA, signerName: kubernetes.io/kube-apiserver-client, usages: [client auth]}
""", "/apis/certificates.k8s.io/v1/certificatesigningrequests",
        "certificatesigningrequest.certificates.k8s.io/csr1 created"),
    "clusterrole": ("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: cr1}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
""", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "clusterrole.rbac.authorization.k8s.io/cr1 created"),
}


@pytest.mark.parametrize("aggregated", [True, False], ids=["aggregated", "legacy"])
@pytest.mark.parametrize("kind", list(MANIFESTS))
async def test_create_delegates_validation_to_server(stub: Stub, tmp_path: Path, kind: str,
                                                     aggregated: bool) -> None:
    stub.aggregated = aggregated
    manifest, path, printed = MANIFESTS[kind]
    (tmp_path / "m.yaml").write_text(manifest)
    rc, out, err = await stub.kubectl("create", "-f", str(tmp_path / "m.yaml"))
    assert (rc, err) == (0, ""), err
    assert out.strip() == printed
    [write] = stub.writes()
    assert (write.method, write.path) == ("POST", path)
    assert write.query == {"fieldManager": "kubectl-create", "fieldValidation": "Strict"}


async def test_create_review_kind_without_patch_path(stub: Stub, tmp_path: Path) -> None:
    """Review kinds get a PATCH op in our spec (openapi.py rule 3), else kubectl needs /openapi/v2."""
    (tmp_path / "tr.yaml").write_text("apiVersion: authentication.k8s.io/v1\nkind: TokenReview\n"
                                      "spec: {token: abc}\n")
    rc, out, err = await stub.kubectl("create", "-f", str(tmp_path / "tr.yaml"), "-o", "name")
    assert (rc, err) == (0, ""), err
    assert out.strip() == "tokenreview.authentication.k8s.io/<unknown>"
    [write] = stub.writes()
    assert write.path == "/apis/authentication.k8s.io/v1/tokenreviews"
    assert write.query["fieldValidation"] == "Strict"


async def test_apply_existing_uses_builtin_strategic_merge(stub: Stub, tmp_path: Path) -> None:
    """PATCH ops advertise no requestBody, so kubectl computes the patch from its Go types (merge key
    ``name`` for containers) without warnings, instead of from our loose schemas."""
    live = {"metadata": {"name": "p2", "namespace": "default", "annotations": {
        "kubectl.kubernetes.io/last-applied-configuration":
            '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p2","namespace":"default"},'
            '"spec":{"containers":[{"image":"nginx","name":"c"}]}}'}},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
    stub.objects["pods"] = [live]
    (tmp_path / "p2.yaml").write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p2}\n"
                                      "spec:\n  containers: [{name: c, image: nginx:2}]\n")
    rc, out, err = await stub.kubectl("apply", "-f", str(tmp_path / "p2.yaml"))
    assert (rc, err) == (0, ""), err
    [patch] = stub.writes()
    assert patch.content_type == "application/strategic-merge-patch+json"
    assert patch.query["fieldValidation"] == "Strict"
    assert patch.body["spec"]["$setElementOrder/containers"] == [{"name": "c"}]


async def test_explain_reads_component_schema(stub: Stub) -> None:
    rc, out, err = await stub.kubectl("explain", "pods")
    assert rc == 0, err
    assert "KIND:       Pod" in out and "VERSION:    v1" in out
