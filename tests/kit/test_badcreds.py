"""The bad-credential catalogue against every authenticator: always 401 with the logged reason, never
200 (not even where everyone, anonymous included, would be allowed), never 500."""

from __future__ import annotations

import pytest

from miniapi.testing import BAD_CREDENTIALS, CATALOGUE, KitAPIServer, assert_allowed, assert_unauthenticated
from miniapi.testing.badcreds import catalogue_case

SECRETS = "/api/v1/namespaces/kube-system/secrets"
AUTHENTICATORS = ("x509", "token-file", "service-account", "bootstrap-token")
# Which defects each authenticator can have; "-" marks what does not apply, and why.
COVERAGE = {
    "expired": {"x509", "service-account", "bootstrap-token"},  # static tokens never expire
    "not-yet-valid": {"x509", "service-account"},  # bootstrap tokens have no notBefore
    "untrusted-signer": set(AUTHENTICATORS),
    "tampered": set(AUTHENTICATORS),
    "revoked": {"token-file", "service-account", "bootstrap-token"},  # no CRL/OCSP for client certs
    "wrong-usage": {"x509", "bootstrap-token"},
    "wrong-audience": {"service-account"},
    "wrong-issuer": {"service-account"},
    "alg-none": {"service-account"},
    "hs256-public-key": {"service-account"},
}


# Known server bugs, tracked here until fixed (strict: the xfail itself fails once they are).
KNOWN_BUGS: dict[str, str] = {}
CASES = [pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c])) if c in KNOWN_BUGS else c
         for c in BAD_CREDENTIALS]


@pytest.fixture(scope="module")
def permissive(module_apiserver_factory) -> KitAPIServer:  # type: ignore[no-untyped-def]
    """Where a leaking authenticator would show: everyone, anonymous included, may do anything."""
    return module_apiserver_factory(authorization_mode="AlwaysAllow", anonymous_auth=True)


@pytest.fixture(scope="module")
def kubeadm(module_apiserver_factory) -> KitAPIServer:  # type: ignore[no-untyped-def]
    return module_apiserver_factory()


def test_catalogue_covers_every_authenticator() -> None:
    have = {(case.defect, case.authenticator) for case in CATALOGUE}
    want = {(defect, a) for defect, authenticators in COVERAGE.items() for a in authenticators}
    assert have == want
    assert len(set(BAD_CREDENTIALS)) == len(CATALOGUE)


@pytest.mark.parametrize("case_id", CASES)
def test_bad_credential_is_401_even_where_anyone_is_allowed(permissive: KitAPIServer, case_id: str) -> None:
    case = catalogue_case(case_id)
    resp = permissive.bad_credential(case_id).sync.get(SECRETS)
    assert resp.status == 401, f"{case_id}: {resp.status} {resp.message}"
    assert_unauthenticated(resp, case.reason)
    assert resp.message == "Unauthorized"  # the client learns nothing about why


@pytest.mark.parametrize("case_id", CASES)
def test_bad_credential_is_401_on_a_kubeadm_server(kubeadm: KitAPIServer, case_id: str) -> None:
    assert_unauthenticated(kubeadm.bad_credential(case_id).sync.get("/version"), catalogue_case(case_id).reason)


@pytest.mark.parametrize("authenticator", AUTHENTICATORS)
def test_good_credential_of_each_authenticator_is_allowed(permissive: KitAPIServer, authenticator: str) -> None:
    """The control: the same server says 200 to a good credential of each kind."""
    make = {"x509": lambda: permissive.as_user("alice"),
            "token-file": lambda: permissive.as_user("alice", via="token"),
            "service-account": lambda: permissive.as_service_account("good", pod="good-pod"),
            "bootstrap-token": lambda: permissive.as_bootstrap_token()}[authenticator]
    assert_allowed(make().sync.get(SECRETS), authenticator=authenticator)


def test_unknown_case_names_the_catalogue(permissive: KitAPIServer) -> None:
    with pytest.raises(KeyError, match="x509.expired"):
        permissive.bad_credential("x509.lost")


@pytest.mark.apiserver(anonymous_auth=False)
def test_no_credential_without_anonymous_auth(apiserver: KitAPIServer) -> None:
    assert_unauthenticated(apiserver.anonymous.sync.get("/version"),
                           "no credentials provided and anonymous requests are disabled")
