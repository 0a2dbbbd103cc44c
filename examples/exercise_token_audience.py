"""Exercise 3: token audience.

Pod ``app`` (service account ``app``) logs in to a secrets vault with a service-account token. The
vault checks the token itself, the OIDC way: signature against the keys the apiserver publishes at
``/openid/v1/jwks``, issuer, expiry, and an audience that names the vault.

Whoever holds a token can replay it wherever its audience is accepted. So the vault's token must be
useless against the apiserver, and the apiserver's tokens useless at the vault. Set the audiences of
the token the pod requests for the vault (a TokenRequest's ``spec.audiences``, as a projected volume's
``serviceAccountToken.audience`` would) until the tests pass:

    cd examples && pytest exercise_token_audience.py
"""

from __future__ import annotations

import jwt
import pytest

from miniapi.testing import Identity, KitAPIServer, assert_unauthenticated

# --- your part -------------------------------------------------------------------------------------
VAULT_TOKEN_AUDIENCES: list[str] | None = None  # None: the TokenRequest default, the API's audience
# --- end of your part --------------------------------------------------------------------------------

VAULT = "vault"
AUDIENCE = ("The vault only accepts tokens whose audience names it, and the apiserver must reject them: "
            "request the pod's vault token with audiences=['vault'].")


def vault_login(api: KitAPIServer, token: str) -> dict[str, object]:
    """What the vault does: verify against the issuer's published keys (no call to the apiserver's
    TokenReview), then check issuer, expiry and that the audience is the vault."""
    keys = api.admin.sync.get("/openid/v1/jwks").json
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwt.PyJWKSet.from_dict(keys).keys if k.key_id == header.get("kid"))
    claims: dict[str, object] = jwt.decode(token, key.key, algorithms=[key.algorithm_name], audience=VAULT,
                                           issuer=api.pki.issuer)
    return claims


@pytest.fixture
def vault_token(apiserver: KitAPIServer) -> Identity:
    return apiserver.as_service_account("app", pod="app", audiences=VAULT_TOKEN_AUDIENCES)


def test_vault_accepts_the_pods_token(apiserver: KitAPIServer, vault_token: Identity) -> None:
    try:
        claims = vault_login(apiserver, vault_token.token or "")
    except jwt.InvalidAudienceError as e:
        pytest.fail(f"the vault refused the token: {e}. {AUDIENCE}")
    assert claims["sub"] == "system:serviceaccount:default:app"


def test_vault_refuses_an_apiserver_token(apiserver: KitAPIServer) -> None:
    api_token = apiserver.as_service_account("app", pod="app")  # the default audience: the apiserver
    with pytest.raises(jwt.InvalidAudienceError):
        vault_login(apiserver, api_token.token or "")


async def test_a_leaked_vault_token_is_useless_against_the_apiserver(vault_token: Identity) -> None:
    resp = await vault_token.get("/api/v1/namespaces/default/pods")
    assert_unauthenticated(resp, reason="is invalid for the target audiences",
                           hint="A vault token that the apiserver accepts lets the vault (or anyone who "
                                "steals the token there) act as the pod's service account. " + AUDIENCE)
