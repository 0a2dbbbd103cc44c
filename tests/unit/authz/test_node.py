"""The Node authorizer: the pod graph, each numbered rule, and the graph following pod changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from miniapi.authz.base import Attributes, Decision
from miniapi.authz.node import NodeAuthorizer, pod_references
from miniapi.store.memory import MemoryStore

from .conftest import req, url, user

N1 = user("system:node:n1", "system:nodes", "system:authenticated")
N2 = user("system:node:n2", "system:nodes", "system:authenticated")
NO_RELATION = "no relationship found between node 'n1' and this object"


def pod(name: str, node: str, ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **spec}}


WEB = pod("web", "n1", serviceAccountName="web-sa", imagePullSecrets=[{"name": "regcred"}],
          volumes=[{"name": "tls", "secret": {"secretName": "web-tls"}},
                   {"name": "cfg", "configMap": {"name": "web-cfg"}},
                   {"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}},
                   {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-s"}},
                                                           {"configMap": {"name": "proj-c"}}]}}],
          containers=[{"name": "c", "image": "x",
                       "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-s", "key": "k"}}},
                               {"name": "B",
                                "valueFrom": {"configMapKeyRef": {"name": "env-c", "key": "k"}}}],
                       "envFrom": [{"secretRef": {"name": "envfrom-s"}}]}])
DB = pod("db", "n2", volumes=[{"name": "s", "secret": {"secretName": "db-pass"}}])


@pytest.fixture
async def node_authz(store: MemoryStore) -> AsyncIterator[NodeAuthorizer]:
    await store.create("pods", WEB)
    await store.create("pods", DB)
    await store.create("pods", pod("pending", ""))
    authorizer = NodeAuthorizer(store)
    await authorizer.start()
    yield authorizer
    await authorizer.stop()


def test_pod_references() -> None:
    names = {(kind, name) for kind, _, name in pod_references(WEB)}
    assert names == {("serviceaccounts", "web-sa"), ("secrets", "regcred"), ("secrets", "web-tls"),
                     ("configmaps", "web-cfg"), ("persistentvolumeclaims", "web-data"), ("secrets", "proj-s"),
                     ("configmaps", "proj-c"), ("secrets", "env-s"), ("configmaps", "env-c"),
                     ("secrets", "envfrom-s")}


CASES = [
    # rule 1
    ("not-a-node", req(user("alice", "system:nodes"), "get", "secrets", ns="default", name="web-tls"),
     Decision.NO_OPINION, ""),
    ("node-name-without-group", req(user("system:node:n1"), "get", "secrets", ns="default", name="web-tls"),
     Decision.NO_OPINION, ""),
    ("empty-node-name", req(user("system:node:", "system:nodes"), "get", "pods"),
     Decision.NO_OPINION, 'unknown node for user "system:node:"'),
    # rule 2: any Node (NodeRestriction admission, not the authorizer, keeps a node to its own)
    ("read-any-node", req(N1, "get", "nodes", name="n2"), Decision.ALLOW, ""),
    ("watch-nodes", req(N1, "watch", "nodes"), Decision.ALLOW, ""),
    ("register-node", req(N1, "create", "nodes"), Decision.ALLOW, ""),
    ("own-node-status", req(N1, "patch", "nodes", name="n1", sub="status"), Decision.ALLOW, ""),
    ("other-node-status", req(N1, "update", "nodes", name="n2", sub="status"), Decision.ALLOW, ""),
    ("other-node-patch", req(N1, "patch", "nodes", name="n2"), Decision.ALLOW, ""),
    ("own-node-update", req(N1, "update", "nodes", name="n1"), Decision.ALLOW, ""),
    ("no-node-delete", req(N1, "delete", "nodes", name="n1"), Decision.NO_OPINION, ""),
    ("no-node-proxy", req(N1, "get", "nodes", name="n2", sub="proxy"), Decision.NO_OPINION, ""),
    # rule 3: the static rules; NodeRestriction checks which pod
    ("list-pods", req(N1, "list", "pods"), Decision.ALLOW, ""),
    ("own-pod-status", req(N1, "patch", "pods", ns="default", name="web", sub="status"), Decision.ALLOW, ""),
    ("other-pod-status", req(N1, "patch", "pods", ns="default", name="db", sub="status"), Decision.ALLOW, ""),
    ("delete-other-pod", req(N1, "delete", "pods", ns="default", name="db"), Decision.ALLOW, ""),
    ("create-mirror-pod", req(N1, "create", "pods", ns="default"), Decision.ALLOW, ""),
    ("evict", req(N1, "create", "pods", ns="default", name="db", sub="eviction"), Decision.ALLOW, ""),
    ("no-pod-update", req(N1, "update", "pods", ns="default", name="web"), Decision.NO_OPINION, ""),
    ("no-exec", req(N1, "create", "pods", ns="default", name="web", sub="exec"), Decision.NO_OPINION, ""),
    # rule 4
    ("own-secret", req(N1, "get", "secrets", ns="default", name="web-tls"), Decision.ALLOW, ""),
    ("projected-secret", req(N1, "get", "secrets", ns="default", name="proj-s"), Decision.ALLOW, ""),
    ("env-secret-watch", req(N1, "watch", "secrets", ns="default", name="env-s"), Decision.ALLOW, ""),
    ("pull-secret", req(N1, "get", "secrets", ns="default", name="regcred"), Decision.ALLOW, ""),
    ("other-nodes-secret", req(N1, "get", "secrets", ns="default", name="db-pass"),
     Decision.NO_OPINION, NO_RELATION),
    ("same-name-other-namespace", req(N1, "get", "secrets", ns="kube-system", name="web-tls"),
     Decision.NO_OPINION, NO_RELATION),
    ("list-all-secrets", req(N1, "list", "secrets", ns="default"),
     Decision.NO_OPINION, "No Object name found"),
    ("write-secret", req(N1, "update", "secrets", ns="default", name="web-tls"),
     Decision.NO_OPINION, "can only read resources of this type"),
    ("own-configmap", req(N1, "get", "configmaps", ns="default", name="env-c"), Decision.ALLOW, ""),
    # rule 5
    ("own-sa-token", req(N1, "create", "serviceaccounts", ns="default", name="web-sa", sub="token"),
     Decision.ALLOW, ""),
    ("other-sa-token", req(N1, "create", "serviceaccounts", ns="default", name="default", sub="token"),
     Decision.NO_OPINION, NO_RELATION),
    ("own-sa-get", req(N1, "get", "serviceaccounts", ns="default", name="web-sa"), Decision.ALLOW, ""),
    # rule 6
    ("own-pvc", req(N1, "get", "persistentvolumeclaims", ns="default", name="web-data"), Decision.ALLOW, ""),
    ("pvc-list", req(N1, "list", "persistentvolumeclaims", ns="default"),
     Decision.NO_OPINION, "can only get individual resources of this type"),
    # rule 7
    ("own-lease", req(N1, "update", "leases", ns="kube-node-lease", name="n1", group="coordination.k8s.io"),
     Decision.ALLOW, ""),
    ("other-lease", req(N1, "update", "leases", ns="kube-node-lease", name="n2", group="coordination.k8s.io"),
     Decision.NO_OPINION, "can only access node lease with the same name as the requesting node"),
    ("lease-elsewhere", req(N1, "get", "leases", ns="default", name="n1", group="coordination.k8s.io"),
     Decision.NO_OPINION, 'can only access leases in the "kube-node-lease" system namespace'),
    # rule 8
    ("create-csr", req(N1, "create", "certificatesigningrequests", group="certificates.k8s.io"),
     Decision.ALLOW, ""),
    ("events", req(N1, "patch", "events", ns="default", name="e"), Decision.ALLOW, ""),
    ("tokenreview", req(N1, "create", "tokenreviews", group="authentication.k8s.io"), Decision.ALLOW, ""),
    ("sar", req(N1, "create", "subjectaccessreviews", group="authorization.k8s.io"), Decision.ALLOW, ""),
    ("services", req(N1, "list", "services"), Decision.ALLOW, ""),
    ("endpoints-get-only", req(N1, "list", "endpoints", ns="default"), Decision.NO_OPINION, ""),
    ("no-rbac", req(N1, "list", "clusterroles", group="rbac.authorization.k8s.io"), Decision.NO_OPINION, ""),
    ("no-urls", url(N1, "get", "/healthz"), Decision.NO_OPINION, ""),
]


@pytest.mark.parametrize(("attrs", "decision", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_node_rules(node_authz: NodeAuthorizer, attrs: Attributes, decision: Decision,
                          reason: str) -> None:
    assert await node_authz.authorize(attrs) == (decision, reason)


async def test_graph_follows_pod_changes(store: MemoryStore, node_authz: NodeAuthorizer) -> None:
    get_db_pass = req(N1, "get", "secrets", ns="default", name="db-pass")
    moved = await store.get("pods", "default", "db")
    moved["spec"]["nodeName"] = "n1"
    await store.update("pods", moved)
    await node_authz.synced()
    assert (await node_authz.authorize(get_db_pass))[0] is Decision.ALLOW
    assert (await node_authz.authorize(req(N2, "get", "secrets", ns="default", name="db-pass")))[0] \
        is Decision.NO_OPINION

    await store.create("pods", pod("db2", "n1", volumes=[{"name": "s", "secret": {"secretName": "db-pass"}}]))
    await store.delete("pods", "default", "db")
    await node_authz.synced()
    assert (await node_authz.authorize(get_db_pass))[0] is Decision.ALLOW  # still referenced by db2
    await store.delete("pods", "default", "db2")
    await node_authz.synced()
    assert await node_authz.authorize(get_db_pass) == (Decision.NO_OPINION, NO_RELATION)


async def test_rules_for_nodes_is_incomplete(node_authz: NodeAuthorizer) -> None:
    result = await node_authz.rules_for(N1, "default")
    assert result.incomplete and result.evaluation_error
    assert not (await node_authz.rules_for(user("alice"), "default")).incomplete
