"""TokenReview honours spec.audiences: SA tokens are checked against the requested audiences, while
audience-agnostic tokens (token file) count only for the API's own audiences. TokenRequest lifetimes:
--service-account-max-token-expiration and --service-account-extend-token-expiration."""

from __future__ import annotations

import base64
import json
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


async def token_request(http: Http, seconds: int, pod: dict[str, Any] | None) -> tuple[dict[str, Any], str]:
    """A TokenRequest (bound to ``pod`` if given): the answer and its Warning header."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
                                  "uid": pod["metadata"]["uid"]}
    reply = await http.call("POST", "/api/v1/namespaces/default/serviceaccounts/default/token", {"spec": spec})
    assert reply.status == 201, reply.body
    return reply.json, reply.headers.get("Warning", "")


def lifetime(answer: dict[str, Any]) -> tuple[int, int | None]:
    claims = json.loads(base64.urlsafe_b64decode(answer["status"]["token"].split(".")[1] + "=="))
    warn = claims["kubernetes.io"].get("warnafter")
    return claims["exp"] - claims["iat"], None if warn is None else warn - claims["iat"]


@pytest.mark.parametrize("changes, requested, granted, token_lifetime, warning", [
    ({}, 3607, 3607, (365 * 86400, 3607), ""),
    ({"service_account_extend_token_expiration": False}, 3607, 3607, (3607, None), ""),
    ({"service_account_max_token_expiration": 3600}, 7200, 3600, (3600, None),
     '299 - "requested expiration of 7200 seconds shortened to 3600 seconds"'),
    ({"service_account_max_token_expiration": 3600}, 3607, 3600, (3600, None),
     '299 - "requested expiration of 3607 seconds shortened to 3600 seconds"'),
    ({"service_account_max_token_expiration": 7200}, 3607, 3607, (365 * 86400, 3607), ""),
], ids=["extended", "extension-off", "capped", "capped-below-3607-not-extended", "cap-above-3607"])
async def test_token_request_lifetimes(pki: Pki, changes: dict[str, Any], requested: int, granted: int,
                                       token_lifetime: tuple[int, int | None], warning: str) -> None:
    async with running(pki.config(**changes), pki) as (_, http):
        reply = await http.call("POST", "/api/v1/namespaces/default/pods", {
            "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        assert reply.status == 201, reply.body
        answer, header = await token_request(http, requested, reply.json)
    assert answer["spec"]["expirationSeconds"] == granted and header == warning
    assert lifetime(answer) == token_lifetime
