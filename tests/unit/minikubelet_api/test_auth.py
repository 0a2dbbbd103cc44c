"""minikubelet.auth without sockets: attributes, messages, caches, the authenticator union."""

from __future__ import annotations

from typing import Any

import pytest

from miniapi.authn.base import AuthenticationError, Credentials
from miniapi.authz.base import Decision
from miniapi.user import UserInfo
from minikubelet import auth
from minikubelet.auth import (
    AuthorizationError,
    KubeletAuthenticator,
    TTLCache,
    Unauthorized,
    WebhookAuthorizer,
    WebhookTokenAuthenticator,
    forbidden_message,
    request_attributes,
    sar_spec,
    subresources_for,
    verb_for,
)
from tests.unit.authn.certs import issue

from .conftest import CLIENT_CA, OTHER_CA
from .fakes import Clock

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


@pytest.mark.parametrize(("path", "fine", "coarse"), [
    ("/pods", ["pods", "proxy"], ["proxy"]),
    ("/pods/", ["pods", "proxy"], ["proxy"]),
    ("/podsfoo", ["proxy"], ["proxy"]),
    ("/runningpods/", ["pods", "proxy"], ["proxy"]),
    ("/healthz", ["healthz", "proxy"], ["proxy"]),
    ("/healthz/syncloop", ["healthz", "proxy"], ["proxy"]),
    ("/configz", ["configz", "proxy"], ["proxy"]),
    ("/stats/summary", ["stats"], ["stats"]),
    ("/stats", ["stats"], ["stats"]),
    ("/statsfoo", ["proxy"], ["proxy"]),
    ("/metrics", ["metrics"], ["metrics"]),
    ("/metrics/cadvisor", ["metrics"], ["metrics"]),
    ("/logs/syslog", ["log"], ["log"]),
    ("/checkpoint/ns/p/c", ["checkpoint"], ["checkpoint"]),
    ("/containerLogs/ns/p/c", ["proxy"], ["proxy"]),
    ("/run/ns/p/c", ["proxy"], ["proxy"]),
    ("/exec/ns/p/c", ["proxy"], ["proxy"]),
    ("/portForward/ns/p", ["proxy"], ["proxy"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_subresources(path: str, fine: list[str], coarse: list[str]) -> None:
    assert subresources_for(path, fine_grained=True) == fine
    assert subresources_for(path, fine_grained=False) == coarse


@pytest.mark.parametrize(("method", "verb"), [("GET", "get"), ("POST", "create"), ("PUT", "update"),
                                               ("PATCH", "patch"), ("DELETE", "delete"), ("HEAD", ""),
                                               ("OPTIONS", "")])
def test_verbs(method: str, verb: str) -> None:
    assert verb_for(method) == verb


def test_forbidden_and_error_texts_match_server_go() -> None:
    attrs = request_attributes(ALICE, "GET", "/pods", "node1")
    assert forbidden_message(attrs) == "Forbidden (user=alice, verb=get, resource=nodes, subresource(s)=[pods proxy])\n"
    assert auth.authorization_error_message(attrs[0]) == \
        "Authorization error (user=alice, verb=get, resource=nodes, subresource=pods)"


def test_sar_spec_omits_empty_fields() -> None:
    attrs = request_attributes(UserInfo("bob", uid="u1", extra={"k": ("v",)}), "POST", "/run/a/b/c", "node1")
    assert sar_spec(attrs[0]) == {
        "resourceAttributes": {"verb": "create", "version": "v1", "resource": "nodes", "subresource": "proxy",
                               "name": "node1"},
        "user": "bob", "extra": {"k": ["v"]}, "uid": "u1"}


def test_ttl_cache_expires_and_bounds() -> None:
    clock = Clock()
    cache = TTLCache(clock, max_entries=2)
    cache.put("a", 1, 10)
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.2
    assert cache.get("a") is None
    cache.put("x", 1, 0)  # ttl 0: not cached
    assert cache.get("x") is None
    for k in "bcd":
        cache.put(k, k, 10)
    assert cache.get("d") == "d" and sum(cache.get(k) is not None for k in "bcd") == 2


class Requester:
    def __init__(self, replies: dict[str, Any]) -> None:
        self.replies, self.calls = replies, []  # type: ignore[var-annotated]

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls.append(body)
        reply = self.replies[path]
        if isinstance(reply, Exception):
            raise reply
        return reply(body) if callable(reply) else reply


def _token_reply(body: dict[str, Any]) -> dict[str, Any]:
    if body["spec"]["token"] == "good":
        return {"status": {"authenticated": True, "user": {"username": "tina", "groups": ["ops"]}}}
    return {"status": {"authenticated": False, "error": "token not found"}}


async def test_token_webhook_caches_by_hash_for_ttl() -> None:
    clock = Clock()
    req = Requester({auth.TOKENREVIEWS: _token_reply})
    hook = WebhookTokenAuthenticator(req, 120, clock)
    assert (await hook.authenticate("good")).name == "tina"
    assert (await hook.authenticate("good")).groups == ("ops",)
    assert len(req.calls) == 1 and req.calls[0]["kind"] == "TokenReview"
    assert all("good" not in k for k in hook._cache._items)  # only a hash is kept
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="token not found"):
            await hook.authenticate("bad")
    assert len(req.calls) == 2  # the rejection is cached too
    clock.now += 121
    await hook.authenticate("good")
    assert len(req.calls) == 3


async def test_token_webhook_errors_are_not_cached() -> None:
    req = Requester({auth.TOKENREVIEWS: OSError("connection refused")})
    hook = WebhookTokenAuthenticator(req, 120)
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="token review failed: connection refused"):
            await hook.authenticate("t")
    assert len(req.calls) == 2


async def test_union_order_and_anonymous(tmp_path: Any) -> None:
    ca_file = CLIENT_CA.write(tmp_path, "ca")[0]
    hook = WebhookTokenAuthenticator(Requester({auth.TOKENREVIEWS: _token_reply}), 120)
    good = issue(CLIENT_CA, "alice", ["devs"]).der
    foreign = issue(OTHER_CA, "mallory", ["system:masters"]).der
    authn = KubeletAuthenticator(client_ca_file=ca_file, token_webhook=hook, anonymous=True)
    user = await authn.authenticate(Credentials(peer_certs=(good,)))
    assert (user.name, user.groups) == ("alice", ("devs", "system:authenticated"))
    # a bad certificate does not fall back to anonymous ...
    with pytest.raises(Unauthorized, match="signed by unknown authority"):
        await authn.authenticate(Credentials(peer_certs=(foreign,)))
    # ... but another credential that verifies still wins (union, not fail-on-error)
    user = await authn.authenticate(Credentials("Bearer good", (foreign,)))
    assert (user.name, user.groups) == ("tina", ("ops", "system:authenticated"))
    with pytest.raises(Unauthorized, match="token not found"):
        await authn.authenticate(Credentials("Bearer bad"))
    assert (await authn.authenticate(Credentials())).name == "system:anonymous"
    assert (await authn.authenticate(Credentials("Basic Zm9vOmJhcg=="))).name == "system:anonymous"
    closed = KubeletAuthenticator(client_ca_file=ca_file, anonymous=False)
    with pytest.raises(Unauthorized):
        await closed.authenticate(Credentials("Bearer good"))  # no webhook: a token means nothing


async def test_webhook_authorizer_caches_allowed_and_denied_separately() -> None:
    clock = Clock()

    def reply(body: dict[str, Any]) -> dict[str, Any]:
        return {"status": {"allowed": body["spec"]["user"] == "admin"}}

    req = Requester({auth.SUBJECTACCESSREVIEWS: reply})
    authz = WebhookAuthorizer(req, 300, 30, clock)
    admin = request_attributes(UserInfo("admin"), "GET", "/pods", "node1")[0]
    alice = request_attributes(ALICE, "GET", "/pods", "node1")[0]
    assert (await authz.authorize(admin))[0] is Decision.ALLOW
    assert (await authz.authorize(alice))[0] is Decision.NO_OPINION
    await authz.authorize(admin)
    await authz.authorize(alice)
    assert len(req.calls) == 2
    clock.now += 31  # the denial expired, the allowance did not
    await authz.authorize(admin)
    await authz.authorize(alice)
    assert len(req.calls) == 3
    clock.now += 300
    await authz.authorize(admin)
    assert len(req.calls) == 4


async def test_webhook_authorizer_call_failure_is_an_error() -> None:
    authz = WebhookAuthorizer(Requester({auth.SUBJECTACCESSREVIEWS: RuntimeError("503 unavailable")}), 300, 30)
    with pytest.raises(AuthorizationError, match="503 unavailable"):
        await authz.authorize(request_attributes(ALICE, "GET", "/pods", "node1")[0])
