"""The kubelet's token manager: what it asks for, and when it refreshes (injected clock, no jitter)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minikubelet.token import CachedToken, TokenError, TokenManager, refresh_time, requires_refresh, token_request

Obj = dict[str, Any]
T0 = 1_800_000_000.0


class Api:
    """Answers TokenRequests like the apiserver: token-N, expiring ``expirationSeconds`` from now."""

    def __init__(self, clock: list[float], cap: int = 0) -> None:
        self.clock, self.cap, self.sent, self.fail = clock, cap, [], False

    async def __call__(self, namespace: str, sa: str, body: Obj) -> Obj:
        self.sent.append((namespace, sa, body))
        if self.fail:
            raise ConnectionError("apiserver down")
        seconds = body["spec"]["expirationSeconds"]
        if self.cap:
            seconds = min(seconds, self.cap)
        exp = dt.datetime.fromtimestamp(self.clock[0] + seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"spec": {**body["spec"], "expirationSeconds": seconds},
                "status": {"token": f"token-{len(self.sent)}", "expirationTimestamp": exp}}


def manager(clock: list[float], api: Api) -> TokenManager:
    return TokenManager(api, clock=lambda: clock[0], jitter=lambda: 0.0)


BODY = token_request([], 3607, "web", "uid-1")


def test_the_request_body_is_bound_to_the_pod_with_the_default_audience() -> None:
    assert BODY == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "spec": {"audiences": [], "expirationSeconds": 3607,
                             "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "uid-1"}}}


@pytest.mark.parametrize(("age", "refresh"), [
    (0, False), (2885, False), (2886, True), (3606, True),
], ids=["fresh", "just-before-80%", "just-after-80%", "nearly-expired"])
def test_refresh_at_80_percent_of_the_ttl(age: float, refresh: bool) -> None:
    tok = CachedToken("t", T0 + 3607, 3607)  # issued at T0; 20 % of 3607 s is 721 s (integer division)
    assert requires_refresh(tok, T0 + age + 0.5) is refresh
    assert refresh_time(tok) == T0 + 3607 - 721


def test_refresh_after_24_hours_even_for_long_tokens_and_jitter_brings_it_forward() -> None:
    year = 365 * 24 * 3600
    tok = CachedToken("t", T0 + year, year)
    assert not requires_refresh(tok, T0 + 24 * 3600 - 1)
    assert requires_refresh(tok, T0 + 24 * 3600 + 1)
    assert requires_refresh(tok, T0 + 24 * 3600 - 5, jitter=10)
    assert refresh_time(tok) == T0 + 24 * 3600


async def test_cached_until_80_percent_then_refreshed() -> None:
    clock = [T0]
    api = Api(clock)
    tokens = manager(clock, api)
    first = await tokens.get("ns", "default", BODY)
    assert first.token == "token-1" and first.expires == T0 + 3607
    clock[0] = T0 + 2885
    assert (await tokens.get("ns", "default", BODY)).token == "token-1"
    clock[0] = T0 + 2887
    assert (await tokens.get("ns", "default", BODY)).token == "token-2"
    assert [s[:2] for s in api.sent] == [("ns", "default"), ("ns", "default")]


async def test_the_granted_lifetime_counts_not_the_requested_one() -> None:
    clock = [T0]
    tokens = manager(clock, Api(clock, cap=1000))  # --service-account-max-token-expiration
    tok = await tokens.get("ns", "default", BODY)
    assert tok.expiration_seconds == 1000 and refresh_time(tok) == T0 + 800


async def test_failed_refresh_keeps_the_unexpired_token_then_fails() -> None:
    clock = [T0]
    api = Api(clock)
    tokens = manager(clock, api)
    await tokens.get("ns", "default", BODY)
    api.fail = True
    clock[0] = T0 + 3000
    assert (await tokens.get("ns", "default", BODY)).token == "token-1"
    clock[0] = T0 + 3608
    with pytest.raises(TokenError, match="failed to fetch token: apiserver down"):
        await tokens.get("ns", "default", BODY)  # expired entries are dropped first


async def test_tokens_are_per_pod_and_dropped_with_the_pod() -> None:
    clock = [T0]
    api = Api(clock)
    tokens = manager(clock, api)
    await tokens.get("ns", "default", BODY)
    await tokens.get("ns", "default", token_request([], 3607, "other", "uid-2"))
    await tokens.get("ns", "default", token_request(["vault"], 3607, "web", "uid-1"))
    assert len(tokens) == 3 and len(api.sent) == 3
    tokens.delete_pod("uid-1")
    assert len(tokens) == 1
