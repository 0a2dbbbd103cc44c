from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.cluster import Cluster, Kubectl, make_cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # These modules exercise the apiserver with hand-made Node objects and no kubelets: a scheduler would
    # bind their pods to those nodes and node lifecycle would taint them, so both controllers are off.
    c = make_cluster(tmp_path_factory.mktemp("cluster"), kcm_controllers="*,-scheduler,-nodelifecycle")
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def admin(cluster: Cluster) -> Kubectl:
    return cluster.kubectl("admin.conf")


@pytest.fixture(scope="module")
def admin_token(cluster: Cluster) -> Kubectl:
    """kubectl with a bearer-token kubeconfig for the token-file user in system:masters."""
    return cluster.kubectl(cluster.token_kubeconfig("admin-token", cluster.token("admin")))


@pytest.fixture(scope="module")
def alice(cluster: Cluster) -> Kubectl:
    """kubectl as the unprivileged token user alice (group developers)."""
    return cluster.kubectl(cluster.token_kubeconfig("alice", cluster.token("alice")))
