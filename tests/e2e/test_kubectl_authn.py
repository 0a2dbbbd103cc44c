"""The real kubectl v1.37 with credentials the apiserver must refuse, and with none at all.

Every refused credential is a 401 that kubectl prints as ``error: You must be logged in to the
server (Unauthorized)``: a bad credential never falls through to anonymous (STYLE.md, the
authenticator union). Certificates and tokens are minted here, at test time: a client certificate
from a foreign CA, an expired one, service-account JWTs that are expired, signed by another key,
``alg: none``, HS256 keyed with the public key, for a deleted service account, or plain garbage.

Anonymous requests (no credentials) are ``system:anonymous``: allowed ``/healthz`` and the other
public-info URLs, forbidden everything else (and, since discovery is forbidden too, kubectl can
only say ``Error from server (Forbidden): unknown``, as against a real cluster).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from miniapi.authn.serviceaccount import ServiceAccountTokenIssuer
from pki.certs import issue_cert, make_ca, make_key
from pki.files import read_cert, read_key
from pki.kubeconfig import ClientCertData, build_kubeconfig
from pki.pem import dump_cert_pem, dump_key_pem
from tests.e2e.cluster import ISSUER, Cluster, Kubectl

pytestmark = pytest.mark.e2e

UNAUTHORIZED = "error: You must be logged in to the server (Unauthorized)\n"
# A 401 during discovery (any command that maps a resource) reads differently, as on a real cluster.
UNAUTHORIZED_DISCOVERY = ("error: You must be logged in to the server (the server has asked for the client to "
                          "provide credentials)\n")
REFUSED = [(["get", "pods"], UNAUTHORIZED_DISCOVERY), (["auth", "whoami"], UNAUTHORIZED),
           (["get", "--raw", "/healthz"], UNAUTHORIZED)]
NOW = dt.datetime.now(dt.UTC)


def cert_kubectl(cluster: Cluster, name: str, cert_pem: bytes, key_pem: bytes) -> Kubectl:
    config = build_kubeconfig(server=cluster.url, ca_pem=(cluster.pki / "ca.crt").read_bytes(), user=name,
                              credential=ClientCertData(cert_pem, key_pem))
    path = cluster.root / f"{name}.conf"
    path.write_text(json.dumps(config))
    return cluster.kubectl(path)


def client_cert(cluster: Cluster, cn: str, orgs: tuple[str, ...] = ("system:masters",), *, foreign: bool = False,
                not_before: dt.datetime | None = None, not_after: dt.datetime | None = None) -> Kubectl:
    """A kubeconfig whose client certificate is signed by the cluster CA, or by a look-alike CA."""
    if foreign:
        ca_cert, ca_key = make_ca("kubernetes", key_type="ec")  # same subject, different key
    else:
        ca_cert, ca_key = read_cert(cluster.pki / "ca.crt"), read_key(cluster.pki / "ca.key")
    key = make_key("ec")
    cert = issue_cert(ca_cert, ca_key, key.public_key(), cn, orgs, client=True, not_before=not_before,
                      not_after=not_after)
    return cert_kubectl(cluster, f"cert-{cn}", dump_cert_pem(cert), dump_key_pem(key))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _sa_claims(uid: str, *, lifetime: int = 3600) -> dict[str, Any]:
    iat = int(NOW.timestamp())
    return {"aud": [ISSUER], "exp": iat + lifetime, "iat": iat, "nbf": iat, "iss": ISSUER, "jti": "j-1",
            "sub": "system:serviceaccount:default:default",
            "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "default", "uid": uid}}}


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


@pytest.fixture(scope="module")
def default_sa_uid(admin: Kubectl) -> str:
    return admin.ok("get", "sa", "default", "-o", "jsonpath={.metadata.uid}")


def token_expired(cluster: Cluster, uid: str) -> str:
    issuer = ServiceAccountTokenIssuer((cluster.pki / "sa.key").read_bytes(), ISSUER)
    token, _ = issuer.issue("default", "default", uid, [ISSUER], 600, now=NOW - dt.timedelta(hours=2))
    return token


def token_other_key(cluster: Cluster, uid: str) -> str:
    issuer = ServiceAccountTokenIssuer(make_key("ec"), ISSUER)
    return issuer.issue("default", "default", uid, [ISSUER])[0]


def token_alg_none(cluster: Cluster, uid: str) -> str:
    return _unsigned({"alg": "none", "typ": "JWT"}, _sa_claims(uid)) + "."


def token_hs256_public_key(cluster: Cluster, uid: str) -> str:
    """The classic key-confusion attack: HMAC keyed with the (public) verification key's PEM."""
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT"}, _sa_claims(uid))
    mac = hmac.new((cluster.pki / "sa.pub").read_bytes(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def token_wrong_uid(cluster: Cluster, uid: str) -> str:
    issuer = ServiceAccountTokenIssuer((cluster.pki / "sa.key").read_bytes(), ISSUER)
    return issuer.issue("default", "default", "00000000-0000-0000-0000-000000000000", [ISSUER])[0]


def token_random(cluster: Cluster, uid: str) -> str:
    return "0123456789abcdef0123456789abcdef"


def token_bootstrap_shaped(cluster: Cluster, uid: str) -> str:
    return "abcdef.0123456789abcdef"  # right shape, no Secret behind it


@pytest.mark.parametrize("make_token", [token_expired, token_other_key, token_alg_none, token_hs256_public_key,
                                        token_wrong_uid, token_random, token_bootstrap_shaped],
                         ids=["sa-expired", "sa-other-key", "sa-alg-none", "sa-hs256-public-key", "sa-wrong-uid",
                              "random", "bootstrap-shaped"])
def test_bad_bearer_token_is_unauthorized(cluster: Cluster, default_sa_uid: str,
                                          make_token: Callable[[Cluster, str], str]) -> None:
    kubectl = cluster.kubectl(cluster.token_kubeconfig(f"bad-{make_token.__name__}",
                                                       make_token(cluster, default_sa_uid)))
    for args, message in REFUSED:
        proc = kubectl.run(*args)
        assert (proc.returncode, proc.stdout) == (1, ""), args
        assert proc.stderr.endswith(message), (args, proc.stderr)


def test_self_made_sa_token_is_accepted(cluster: Cluster, default_sa_uid: str) -> None:
    """Control for the tests above: the same recipe with the right key, uid and clock works."""
    issuer = ServiceAccountTokenIssuer((cluster.pki / "sa.key").read_bytes(), ISSUER)
    token, _ = issuer.issue("default", "default", default_sa_uid, [ISSUER])
    kubectl = cluster.kubectl(cluster.token_kubeconfig("good-sa", token))
    assert "system:serviceaccount:default:default" in kubectl.ok("auth", "whoami")


def test_token_of_a_deleted_service_account(cluster: Cluster, admin: Kubectl) -> None:
    admin.ok("create", "serviceaccount", "ephemeral")
    token = admin.ok("create", "token", "ephemeral").strip()
    kubectl = cluster.kubectl(cluster.token_kubeconfig("sa-ephemeral", token))
    assert "system:serviceaccount:default:ephemeral" in kubectl.ok("auth", "whoami")
    admin.ok("delete", "serviceaccount", "ephemeral")
    assert kubectl.run("auth", "whoami").stderr == UNAUTHORIZED
    admin.ok("create", "serviceaccount", "ephemeral")  # same name, new uid: the old token stays dead
    assert kubectl.run("auth", "whoami").stderr == UNAUTHORIZED


@pytest.mark.parametrize(("case", "kwargs"), [
    ("foreign-ca", {"foreign": True}),
    ("expired", {"not_before": NOW - dt.timedelta(days=2), "not_after": NOW - dt.timedelta(days=1)}),
    ("not-yet-valid", {"not_before": NOW + dt.timedelta(days=1), "not_after": NOW + dt.timedelta(days=2)}),
], ids=["foreign-ca", "expired", "not-yet-valid"])
def test_bad_client_certificate_is_unauthorized(cluster: Cluster, case: str, kwargs: dict[str, Any]) -> None:
    kubectl = client_cert(cluster, f"mallory-{case}", **kwargs)
    for args, message in REFUSED:
        proc = kubectl.run(*args)
        assert (proc.returncode, proc.stdout) == (1, ""), args
        assert proc.stderr.endswith(message), (args, proc.stderr)


def test_good_client_certificate_is_accepted(cluster: Cluster) -> None:
    """Control: the same recipe signed by the cluster CA, valid now, authenticates (and O is a group)."""
    kubectl = client_cert(cluster, "carol", ("devs", "qa"))
    out = kubectl.ok("auth", "whoami")
    assert "carol" in out and "[devs qa system:authenticated]" in out


@pytest.fixture(scope="module")
def anonymous(cluster: Cluster) -> Kubectl:
    """A kubeconfig with no credentials.

    kubectl prompts for a user name when a kubeconfig user can identify no one; a user name with no
    password makes it send ``Authorization: Basic``, which no authenticator claims (basic auth left
    Kubernetes in 1.19), so the request is anonymous exactly as one without the header.
    """
    config = json.loads(cluster.token_kubeconfig("anonymous", "unused").read_text())
    config["users"] = [{"name": "anonymous", "user": {"username": "nobody"}}]
    path = cluster.root / "anonymous.conf"
    path.write_text(json.dumps(config))
    return cluster.kubectl(path)


@pytest.mark.parametrize("path", ["/healthz", "/livez", "/readyz", "/version"])
def test_anonymous_may_read_public_info(anonymous: Kubectl, path: str) -> None:
    proc = anonymous.run("get", "--raw", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok") if path != "/version" else json.loads(proc.stdout)["major"] == "1"


def test_anonymous_is_forbidden_the_api(anonymous: Kubectl) -> None:
    proc = anonymous.run("get", "--raw", "/api/v1/namespaces/default/pods")
    assert (proc.returncode, proc.stderr) == (1, (
        'Error from server (Forbidden): pods is forbidden: User "system:anonymous" cannot list resource "pods" in '
        'API group "" in the namespace "default"\n'))
    discovery = anonymous.run("get", "--raw", "/apis")
    assert discovery.stderr == ('Error from server (Forbidden): forbidden: User "system:anonymous" cannot get path '
                                '"/apis"\n')


def test_anonymous_kubectl_get_pods(anonymous: Kubectl) -> None:
    proc = anonymous.run("get", "pods")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines()[-1] == "Error from server (Forbidden): unknown"


def test_anonymous_cannot_review_itself(anonymous: Kubectl) -> None:
    proc = anonymous.run("auth", "can-i", "get", "/healthz")
    assert proc.returncode == 1
    assert proc.stderr == ('Error from server (Forbidden): selfsubjectaccessreviews.authorization.k8s.io is '
                           'forbidden: User "system:anonymous" cannot create resource "selfsubjectaccessreviews" in '
                           'API group "authorization.k8s.io" at the cluster scope\n')


def test_unauthorized_is_not_anonymous(cluster: Cluster) -> None:
    """A rejected token gets 401 even on /healthz, which anonymous may read: no fall-through."""
    kubectl = cluster.kubectl(cluster.token_kubeconfig("garbage", "not-a-real-token"))
    assert kubectl.run("get", "--raw", "/healthz").stderr == UNAUTHORIZED


def test_kubectl_refuses_an_untrusted_server(cluster: Cluster, tmp_path: Path) -> None:
    """kubectl refuses a server it cannot verify before sending any credential."""
    config = json.loads(cluster.token_kubeconfig("untrusting", cluster.token("admin")).read_text())
    other_ca, _ = make_ca("kubernetes", key_type="ec")
    config["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        dump_cert_pem(other_ca)).decode()
    path = tmp_path / "untrusting.conf"
    path.write_text(json.dumps(config))
    proc = cluster.kubectl(path).run("get", "--raw", "/healthz")
    assert proc.returncode == 1
    assert "x509: certificate signed by unknown authority" in proc.stderr
