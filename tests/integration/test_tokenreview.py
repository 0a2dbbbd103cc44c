"""TokenReview honours spec.audiences: SA tokens are checked against the requested audiences, while
audience-agnostic tokens (token file) count only for the API's own audiences."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import Http, Pki, running

REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
API_AUDIENCE = "https://kubernetes.default.svc.cluster.local"


async def sa_token(http: Http, audiences: list[str]) -> str:
    reply = await http.call("POST", "/api/v1/namespaces/default/serviceaccounts/default/token",
                            {"spec": {"audiences": audiences, "expirationSeconds": 600}})
    assert reply.status == 201, reply.body
    token: str = reply.json["status"]["token"]
    return token


async def review(http: Http, token: str, audiences: list[str] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"token": token}
    if audiences is not None:
        spec["audiences"] = audiences
    reply = await http.call("POST", REVIEWS, {"spec": spec})
    assert reply.status == 201, reply.body
    status: dict[str, Any] = reply.json["status"]
    return status


@pytest.mark.parametrize("token_aud, asked, authenticated, granted", [
    (["vault"], ["vault"], True, ["vault"]),
    (["vault"], None, False, None),
    (["vault"], ["other"], False, None),
    ([API_AUDIENCE], None, True, [API_AUDIENCE]),
    ([API_AUDIENCE, "vault"], ["vault", "x"], True, ["vault"]),
], ids=["sa-own-audience", "sa-default-api-audience-refused", "sa-wrong-audience", "sa-api-audience",
        "sa-intersection"])
async def test_service_account_token_audiences(pki: Pki, token_aud: list[str], asked: list[str] | None,
                                               authenticated: bool, granted: list[str] | None) -> None:
    async with running(pki.config(), pki) as (_, http):
        status = await review(http, await sa_token(http, token_aud), asked)
    assert status["authenticated"] is authenticated, status
    if authenticated:
        assert status["audiences"] == granted
        assert status["user"]["username"] == "system:serviceaccount:default:default"
        assert "system:authenticated" in status["user"]["groups"]
    else:
        assert status["error"]


@pytest.mark.parametrize("asked, authenticated", [
    (None, True), ([API_AUDIENCE], True), (["vault"], False)], ids=["default", "api-audience", "foreign"])
async def test_static_token_counts_only_for_api_audiences(pki: Pki, asked: list[str] | None,
                                                          authenticated: bool) -> None:
    async with running(pki.config(), pki) as (_, http):
        status = await review(http, pki.token("alice"), asked)
    assert status["authenticated"] is authenticated, status
    if authenticated:
        assert status["user"]["username"] == "alice"
        assert status["audiences"] == [API_AUDIENCE]
