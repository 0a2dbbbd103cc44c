"""Solution 4: the kubelet TLS bootstrap flow (see exercise_bootstrap_flow.py for the story).

A new node joins with a bootstrap token (``kubeadm join --token abcdef.0123456789abcdef``). The
apiserver looks the token up in the Secret ``kube-system/bootstrap-token-<id>``, authenticates it as
``system:bootstrap:<id>``, and RBAC lets that group do one thing: ask for a client certificate
(a CertificateSigningRequest). The token should die soon.

Write the Secret the way ``kubeadm token create`` does (the checks are numbered in
miniapi/authn/bootstrap.py) until the tests pass:

    cd examples && pytest exercise_bootstrap_flow.py

The apiserver will not tell you which check failed: every bad bootstrap token is an
"invalid bearer token", for the client and in the audit log. That is on purpose.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest

from miniapi.testing import Identity, KitAPIServer, assert_allowed, assert_forbidden, assert_unauthenticated
from pki.certs import make_csr, make_key


# --- your part -------------------------------------------------------------------------------------
def bootstrap_token_secret(token_id: str, token_secret: str, expiration: dt.datetime) -> dict[str, object]:
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {"token-id": token_id, "token-secret": token_secret,
                       "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
                       "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
                       "expiration": expiration.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")},
    }
# --- end of your part --------------------------------------------------------------------------------


TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
CHECKS = ("the apiserver did not accept the token. Its Secret needs: type bootstrap.kubernetes.io/token; "
          "data (or stringData) token-id and token-secret; usage-bootstrap-authentication: 'true'; "
          "expiration as RFC 3339 ('2030-01-02T03:04:05Z'); auth-extra-groups "
          "'system:bootstrappers:kubeadm:default-node-token' (kubeadm's group).")


def in_hours(hours: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)


@pytest.fixture
def joining_node(apiserver: KitAPIServer) -> Identity:
    apiserver.create(bootstrap_token_secret(TOKEN_ID, TOKEN_SECRET, in_hours(1)))
    return apiserver.with_token(f"{TOKEN_ID}.{TOKEN_SECRET}", "joining node")


async def test_the_token_authenticates(joining_node: Identity) -> None:
    resp = await joining_node.get("/version")
    if resp.status == 401:
        pytest.fail(CHECKS)
    who = await joining_node.whoami()
    assert who["username"] == f"system:bootstrap:{TOKEN_ID}"
    assert "system:bootstrappers:kubeadm:default-node-token" in who["groups"], CHECKS


async def test_the_node_may_ask_for_a_client_certificate(joining_node: Identity) -> None:
    csr = make_csr(make_key("ec"), "system:node:node3", ["system:nodes"])
    resp = await joining_node.post("/apis/certificates.k8s.io/v1/certificatesigningrequests", {
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"generateName": "node-csr-"},
        "spec": {"request": base64.b64encode(csr).decode(), "usages": ["digital signature", "client auth"],
                 "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}})
    assert_allowed(resp, reason='ClusterRole "system:node-bootstrapper"', hint=CHECKS)
    assert resp.status == 201, resp.message


async def test_the_node_may_do_nothing_else(joining_node: Identity) -> None:
    assert_forbidden(await joining_node.get("/api/v1/namespaces/kube-system/secrets"), hint=CHECKS)


async def test_an_expired_token_is_refused(apiserver: KitAPIServer) -> None:
    apiserver.create(bootstrap_token_secret("old000", TOKEN_SECRET, in_hours(-1)))
    late = apiserver.with_token(f"old000.{TOKEN_SECRET}", "late node")
    assert_unauthenticated(await late.get("/version"), reason="invalid bearer token",
                           hint="A token whose expiration has passed must not authenticate: write the "
                                "expiration you are given into the Secret.")


def test_the_token_dies_within_a_day(apiserver: KitAPIServer) -> None:
    secret = bootstrap_token_secret(TOKEN_ID, TOKEN_SECRET, in_hours(1))
    values = {**{k: base64.b64decode(str(v)).decode() for k, v in dict(secret.get("data") or {}).items()},
              **dict(secret.get("stringData") or {})}
    assert "expiration" in values, "set an expiration: a bootstrap token without one lives forever"
    expires = dt.datetime.fromisoformat(str(values["expiration"]))
    assert dt.datetime.now(dt.UTC) < expires <= in_hours(24), "kubeadm's default TTL is 24 hours"
