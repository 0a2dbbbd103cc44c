"""The secure port's filter over real TLS: x509, webhook TokenReview, anonymous; AlwaysAllow or a
SubjectAccessReview webhook (a fake apiserver on 127.0.0.1 that counts what it is asked)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .conftest import KubeletFactory, Pki
from .fakes import Clock, FakeApiserver, PlainClient

USERS = {"tina-token": {"username": "tina", "uid": "u-9", "groups": ["ops"]},
         "alice-token": {"username": "alice", "groups": ["devs"]}}
FORBIDDEN_PODS = "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[FakeApiserver, PlainClient]]:
    fake = FakeApiserver(tokens=dict(USERS), allowed={("tina", "proxy", "get"), ("tina", "proxy", "create"),
                                                      ("kube-apiserver-kubelet-client", "proxy", "get"),
                                                      ("tina", "stats", "get")})
    async with fake.serving():
        client = PlainClient(fake.url)
        try:
            yield fake, client
        finally:
            await client.close()


async def test_anonymous_off_without_credential_is_401(kubelet: KubeletFactory) -> None:
    async with kubelet(anonymous_auth=False) as k:
        r = await k.call("/pods")
        assert (r.status, r.text) == (401, "Unauthorized")
        assert (await k.call("/healthz")).status == 401


@pytest.mark.parametrize("anonymous", [True, False], ids=["anonymous-on", "anonymous-off"])
async def test_client_certificates(kubelet: KubeletFactory, pki: Pki, anonymous: bool) -> None:
    async with kubelet(anonymous_auth=anonymous) as k:
        assert (await k.call("/pods", cert=pki.alice)).status == 200
        # wrong CA / expired: the handshake passes (RequestClientCert) and authn says 401, never anonymous
        for cert in (pki.other_ca, pki.expired):
            r = await k.call("/pods", cert=cert)
            assert (r.status, r.text) == (401, "Unauthorized")


async def test_without_client_ca_certificates_are_not_asked_for(kubelet: KubeletFactory, pki: Pki) -> None:
    async with kubelet(client_ca_file="", anonymous_auth=False) as k:
        assert (await k.call("/pods", cert=pki.alice)).status == 401


async def test_a_token_without_the_webhook_is_ignored(kubelet: KubeletFactory) -> None:
    async with kubelet() as k:  # anonymous on, webhook authn off: the token is not looked at
        assert (await k.call("/pods", token="tina-token")).status == 200


async def test_webhook_authn_and_authz(kubelet: KubeletFactory, pki: Pki,
                                       apiserver: tuple[FakeApiserver, PlainClient]) -> None:
    fake, client = apiserver
    async with kubelet(client=client, anonymous_auth=False, webhook_authn=True,
                       authorization_mode="Webhook") as k:
        assert (await k.call("/pods")).status == 401
        r = await k.call("/pods", token="wrong")
        assert (r.status, r.text) == (401, "Unauthorized")
        r = await k.call("/pods", token="alice-token")
        assert (r.status, r.text) == (403, FORBIDDEN_PODS)
        r = await k.call("/pods", cert=pki.alice)
        assert (r.status, r.text) == (403, FORBIDDEN_PODS)
        r = await k.call("/run/default/p1/c1?cmd=id", "POST", token="alice-token")
        assert (r.status, r.text) == (403, "Forbidden (user=alice, verb=create, resource=nodes, "
                                           "subresource(s)=[proxy])\n")
        assert (await k.call("/pods", token="tina-token")).status == 200
        assert (await k.call("/run/default/p1/c1?cmd=id", "POST", token="tina-token")).status == 200
        assert (await k.call("/stats/summary", token="tina-token")).status == 200
        assert (await k.call("/metrics", token="tina-token")).status == 403  # metrics not granted
        assert (await k.call("/containerLogs/default/p1/c1", cert=pki.apiserver)).status == 200
        # the SAR carries the identity as authenticated (system:authenticated added, uid kept)
        tina = next(s["spec"] for s in fake.sars if s["spec"]["user"] == "tina")
        assert tina["groups"] == ["ops", "system:authenticated"] and tina["uid"] == "u-9"
        assert tina["resourceAttributes"] == {"verb": "get", "version": "v1", "resource": "nodes",
                                              "subresource": "pods", "name": "node1"}


async def test_fine_grained_off_asks_only_for_proxy(kubelet: KubeletFactory, pki: Pki,
                                                    apiserver: tuple[FakeApiserver, PlainClient]) -> None:
    fake, client = apiserver
    async with kubelet(client=client, authorization_mode="Webhook", fine_grained_authz=False) as k:
        r = await k.call("/pods", cert=pki.alice)
        assert r.text == "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[proxy])\n"
        assert [s["spec"]["resourceAttributes"]["subresource"] for s in fake.sars] == ["proxy"]


async def test_decisions_and_tokens_are_cached(kubelet: KubeletFactory, pki: Pki,
                                               apiserver: tuple[FakeApiserver, PlainClient]) -> None:
    fake, client = apiserver
    clock = Clock()
    async with kubelet(client=client, anonymous_auth=False, webhook_authn=True, authorization_mode="Webhook",
                       clock=clock) as k:
        assert (await k.call("/pods", token="tina-token")).status == 200
        assert (len(fake.token_reviews), len(fake.sars)) == (1, 2)  # pods: no; proxy: yes
        assert (await k.call("/pods", token="tina-token")).status == 200
        assert (len(fake.token_reviews), len(fake.sars)) == (1, 2)  # all from the caches
        assert (await k.call("/pods", cert=pki.alice)).status == 403
        assert (await k.call("/pods", cert=pki.alice)).status == 403
        assert len(fake.sars) == 4  # alice's two denials asked once
        clock.now += 31  # denials (30s) expire, allowances (5m) and tokens (2m) do not
        await k.call("/pods", cert=pki.alice)
        await k.call("/pods", token="tina-token")
        assert (len(fake.token_reviews), len(fake.sars)) == (1, 7)  # alice x2, tina's "pods" denial
        clock.now += 120
        await k.call("/pods", token="tina-token")
        assert len(fake.token_reviews) == 2
        hook = k.api.authenticator.token_webhook
        assert hook is not None and all("tina-token" not in key for key in hook._cache._items)


async def test_failing_apiserver(kubelet: KubeletFactory, pki: Pki,
                                 apiserver: tuple[FakeApiserver, PlainClient]) -> None:
    fake, client = apiserver
    fake.fail = True
    async with kubelet(client=client, webhook_authn=True, authorization_mode="Webhook") as k:
        r = await k.call("/pods", cert=pki.alice)
        assert (r.status, r.text) == (500, "Authorization error (user=alice, verb=get, resource=nodes, "
                                           "subresource=pods)")
        r = await k.call("/pods", token="tina-token")  # a token that cannot be reviewed is no identity
        assert (r.status, r.text) == (401, "Unauthorized")
        await k.call("/pods", cert=pki.alice)
        assert len(fake.sars) == 2  # errors are not cached
        fake.fail = False
        assert (await k.call("/pods", token="tina-token")).status == 200
