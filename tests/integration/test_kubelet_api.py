"""The kubelet API against a REAL apiserver process: the kubelet's webhooks (TokenReview,
SubjectAccessReview) go to ``python -m miniapi`` over TLS with the node's own kubeconfig, and the
identities are the ones ``minipki`` issues (admin token, alice's token, the apiserver's
kubelet-client certificate, bound by the default policy to system:kube-apiserver-to-kubelet).

The kubelet listens on 127.0.0.2 with real TLS (nodes/node1/pki/kubelet.crt, client CA pki/ca.crt).
"""

from __future__ import annotations

import contextlib
import json
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from miniapi.client import KubeClient
from minikubelet.auth import WebhookAuthorizer
from minikubelet.server import KubeletAPI, ServerSettings
from tests.e2e.cluster import Cluster, free_port, make_cluster
from tests.unit.minikubelet_api.fakes import FakeRuntime

HOST = "127.0.0.2"
TIMEOUT = aiohttp.ClientTimeout(total=20)
LOGS = "/containerLogs/default/web/app"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = make_cluster(tmp_path_factory.mktemp("kubelet-api-cluster"))
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def runtime(tmp_path: Path) -> FakeRuntime:
    rt = FakeRuntime(tmp_path)
    rt.add_pod("default", "web", "app")
    rt.append("default", "web", "app", "listening on :8080")
    rt.append("default", "web", "app", "GET / 200", stream="stderr")
    return rt


@contextlib.asynccontextmanager
async def kubelet(cluster: Cluster, runtime: FakeRuntime, client: KubeClient | None,
                  **changes: Any) -> AsyncIterator[KubeletAPI]:
    node = cluster.root / "nodes" / "node1" / "pki"
    settings = ServerSettings(node_name="node1", address=HOST, port=free_port(HOST),
                              read_only_port=free_port(HOST), tls_cert_file=str(node / "kubelet.crt"),
                              tls_private_key_file=str(node / "kubelet.key"),
                              client_ca_file=str(cluster.pki / "ca.crt"), **changes)
    api = KubeletAPI(settings, runtime, client, {"kind": "KubeletConfiguration"})
    await api.start()
    try:
        yield api
    finally:
        await api.stop()
        if client is not None:
            await client.close()


async def call(cluster: Cluster, api: KubeletAPI, path: str, *, cert: tuple[Path, Path] | None = None,
               token: str | None = None, read_only: bool = False) -> tuple[int, bytes]:
    """A request verifying the kubelet's serving certificate (CA-signed, names node1)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    if cert:
        ctx.load_cert_chain(*cert)
    url = f"http://{HOST}:{api.read_only_port}{path}" if read_only else f"https://{HOST}:{api.port}{path}"
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=headers, timeout=TIMEOUT, ssl=ctx, server_hostname="node1") as resp:
        return resp.status, await resp.read()


async def test_anonymous_and_always_allow_let_anyone_read(cluster: Cluster, runtime: FakeRuntime) -> None:
    async with kubelet(cluster, runtime, None) as api:  # the insecure flag defaults
        status, body = await call(cluster, api, "/pods")
        assert status == 200 and json.loads(body)["items"][0]["metadata"]["name"] == "web"
        assert await call(cluster, api, LOGS) == (200, b"listening on :8080\nGET / 200\n")
        status, body = await call(cluster, api, "/pods", read_only=True)
        assert status == 200 and json.loads(body)["kind"] == "PodList"
        assert (await call(cluster, api, "/stats/summary", read_only=True))[0] == 200


async def test_webhook_authn_and_authz_through_the_apiserver(cluster: Cluster, runtime: FakeRuntime) -> None:
    client = KubeClient.from_kubeconfig(cluster.root / "nodes" / "node1" / "kubelet.conf")
    apiserver_cert = (cluster.pki / "apiserver-kubelet-client.crt", cluster.pki / "apiserver-kubelet-client.key")
    async with kubelet(cluster, runtime, client, anonymous_auth=False, webhook_authn=True,
                       authorization_mode="Webhook") as api:
        assert await call(cluster, api, "/pods") == (401, b"Unauthorized")
        assert await call(cluster, api, "/pods", token="not-a-token") == (401, b"Unauthorized")
        assert await call(cluster, api, "/pods", token=cluster.token("alice")) == (
            403, b"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n")
        assert await call(cluster, api, LOGS, token=cluster.token("alice")) == (
            403, b"Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])\n")
        status, body = await call(cluster, api, "/pods", cert=apiserver_cert)
        assert status == 200 and json.loads(body)["items"][0]["metadata"]["name"] == "web"
        assert await call(cluster, api, LOGS, cert=apiserver_cert) == (200, b"listening on :8080\nGET / 200\n")
        assert (await call(cluster, api, "/stats/summary", cert=apiserver_cert))[0] == 200
        assert (await call(cluster, api, "/pods", token=cluster.token("admin")))[0] == 200
        # the read-only port still answers anyone: that is what turning it off (0) is for
        assert (await call(cluster, api, "/pods", read_only=True))[0] == 200

        authz, authn = api.authorizer, api.authenticator.token_webhook
        assert isinstance(authz, WebhookAuthorizer) and authn is not None
        sars, reviews = authz.reviews_sent, authn.reviews_sent
        for _ in range(3):
            assert (await call(cluster, api, "/pods", token=cluster.token("admin")))[0] == 200
            assert (await call(cluster, api, "/pods", token=cluster.token("alice")))[0] == 403
        assert (authz.reviews_sent, authn.reviews_sent) == (sars, reviews)  # all from the caches
