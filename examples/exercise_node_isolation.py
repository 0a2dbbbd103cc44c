"""Exercise 2: node isolation.

Two nodes: pod ``web`` on node1 mounts the Secret ``web-tls``; pod ``db`` on node2 mounts
``db-password``. A kubelet needs the secrets of *its* pods, and nothing more: if node1 is
compromised, the attacker holds node1's kubelet credential and must not get the database password.

This cluster was set up the pre-1.8 way: RBAC only, with the ``system:node`` ClusterRole bound to
the group ``system:nodes``. That role lets any node read any secret. Change the apiserver flags and
the extra objects below until the tests pass:

    cd examples && pytest exercise_node_isolation.py
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from miniapi.testing import KitAPIServer, assert_allowed, assert_forbidden, objects

# --- your part -------------------------------------------------------------------------------------
APISERVER_FLAGS = {"authorization_mode": "RBAC"}
EXTRA_OBJECTS = [
    objects.role_binding("system:nodes-legacy", "system:node", groups=["system:nodes"]),
]
# --- end of your part --------------------------------------------------------------------------------

ISOLATE = ("RBAC cannot say 'only the secrets of this node's pods'; the Node authorizer can. Run the "
           "apiserver with authorization_mode 'Node,RBAC' (as kubeadm does) and drop the system:nodes binding.")


@pytest.fixture
def cluster(apiserver_factory: Callable[..., KitAPIServer]) -> KitAPIServer:
    api = apiserver_factory(**APISERVER_FLAGS)
    for obj in EXTRA_OBJECTS:
        api.create(obj)
    for node, pod, secret in (("node1", "web", "web-tls"), ("node2", "db", "db-password")):
        api.create(objects.node(node))
        api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret, "namespace": "default"},
                    "stringData": {"value": f"{secret}-value"}})
        api.create(objects.pod("default", pod, node=node, secrets=[secret]))
    return api


async def test_kubelet_reads_the_secret_of_its_pod(cluster: KitAPIServer) -> None:
    node1 = cluster.as_node("node1")
    event = assert_allowed(await node1.get("/api/v1/namespaces/default/secrets/web-tls"),
                           hint="node1 runs pod web, which mounts web-tls: its kubelet must read it.")
    if event["annotations"]["authorization.k8s.io/reason"].startswith("RBAC"):
        pytest.fail("node1 read web-tls through an RBAC binding, i.e. a rule that works for every secret "
                    "and every node. " + ISOLATE)


async def test_kubelet_cannot_read_another_nodes_secret(cluster: KitAPIServer) -> None:
    node1 = cluster.as_node("node1")
    assert_forbidden(await node1.get("/api/v1/namespaces/default/secrets/db-password"),
                     reason="no relationship found between node 'node1' and this object",
                     hint="Only a pod on node2 uses db-password. " + ISOLATE)


async def test_kubelet_cannot_list_secrets(cluster: KitAPIServer) -> None:
    assert_forbidden(await cluster.as_node("node1").get("/api/v1/namespaces/default/secrets"), hint=ISOLATE)


async def test_kubelet_cannot_touch_another_nodes_pod(cluster: KitAPIServer) -> None:
    node1 = cluster.as_node("node1")
    resp = await node1.patch("/api/v1/namespaces/default/pods/db/status", {"status": {"phase": "Failed"}})
    # authorization lets any node patch pods/status; the NodeRestriction admission plugin (kubeadm turns
    # it on, and so does the kit) checks whose pod it is, after authorization: a 403, though "allow" is logged
    assert (resp.status, resp.status_reason) == (403, "Forbidden"), resp.content
    assert resp.message == ('pods "db" is forbidden: node "node1" can only update pod status for pods '
                                    "with spec.nodeName set to itself")
