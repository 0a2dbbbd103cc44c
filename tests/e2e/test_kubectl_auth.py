"""The real kubectl v1.37 on identity and authorization: who am I, what may I do, and who grants it.

Covers PROTOCOLS.md sections 2, 7 and 8 as kubectl shows them: ``auth whoami`` for certificate,
static-token and service-account users; ``auth can-i`` (yes/no exit codes, ``--list``,
subresources, non-resource URLs); ``create token`` and its claims; RBAC Roles and bindings with the
exact Forbidden text and the escalation check; CertificateSigningRequests from creation to
``certificate approve|deny``, including the signer permission an approver needs.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from miniapi.authn.serviceaccount import ServiceAccountTokenIssuer
from pki.certs import issue_cert, make_csr, make_key
from pki.files import read_cert, read_key
from pki.kubeconfig import ClientCertData, build_kubeconfig
from pki.pem import dump_cert_pem, dump_key_pem
from tests.e2e.cluster import ISSUER, Cluster, Kubectl

pytestmark = pytest.mark.e2e

# The controller-manager runs beside the apiserver and auto-approves kubelet client CSRs from anyone
# allowed certificatesigningrequests/nodeclient (admins, bootstrappers), so the manual approve/deny flow
# is shown with the generic client signer, which is never auto-approved.
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
CSR_PREFIX = "certificatesigningrequest.certificates.k8s.io"
SA_GROUPS = "[system:serviceaccounts system:serviceaccounts:default system:authenticated]"


@pytest.fixture(params=["admin", "admin_token"], ids=["client-cert", "bearer-token"])
def kc(request: pytest.FixtureRequest) -> Kubectl:
    """kubectl as a system:masters user, once per credential kind."""
    return request.getfixturevalue(request.param)


def apply(kubectl: Kubectl, tmp_path: Path, *docs: dict[str, Any]) -> str:
    path = tmp_path / "manifest.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    return kubectl.ok("create", "-f", str(path))


def as_token(cluster: Cluster, name: str, token: str) -> Kubectl:
    return cluster.kubectl(cluster.token_kubeconfig(name, token))


def whoami(kubectl: Kubectl) -> dict[str, str]:
    """``kubectl auth whoami`` as {ATTRIBUTE: VALUE}."""
    out = kubectl.ok("auth", "whoami").splitlines()
    assert re.split(r"\s{2,}", out[0].strip()) == ["ATTRIBUTE", "VALUE"]
    return dict(re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in out[1:])  # type: ignore[misc]


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def sa_uid(kubectl: Kubectl, name: str, namespace: str = "default") -> str:
    return kubectl.ok("get", "sa", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}")


# -- auth whoami ---------------------------------------------------------------------------------


def test_whoami_client_certificate(admin: Kubectl) -> None:
    # CN -> user name, each O -> a group; a certificate carries no uid
    assert whoami(admin) == {"Username": "kubernetes-admin", "Groups": "[system:masters system:authenticated]"}


@pytest.mark.parametrize(("user", "expected"), [
    ("admin", {"Username": "admin", "UID": "uid-admin", "Groups": "[system:masters system:authenticated]"}),
    ("alice", {"Username": "alice", "UID": "uid-alice", "Groups": "[developers system:authenticated]"}),
], ids=["admin", "alice"])
def test_whoami_static_token(cluster: Cluster, user: str, expected: dict[str, str]) -> None:
    assert whoami(as_token(cluster, f"whoami-{user}", cluster.token(user))) == expected


def test_whoami_service_account_token(cluster: Cluster, admin: Kubectl) -> None:
    token = admin.ok("create", "token", "default").strip()
    me = whoami(as_token(cluster, "sa-default", token))
    assert me == {"Username": "system:serviceaccount:default:default", "UID": sa_uid(admin, "default"),
                  "Groups": SA_GROUPS,
                  "Extra: authentication.kubernetes.io/credential-id": f"[JTI={claims(token)['jti']}]"}


def test_whoami_pod_bound_token(cluster: Cluster, admin: Kubectl, tmp_path: Path) -> None:
    apply(admin, tmp_path, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound", "namespace": "default"},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    pod_uid = admin.ok("get", "pod", "bound", "-o", "jsonpath={.metadata.uid}")
    token = admin.ok("create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "bound").strip()
    me = whoami(as_token(cluster, "sa-bound", token))
    assert me["Extra: authentication.kubernetes.io/pod-name"] == "[bound]"
    assert me["Extra: authentication.kubernetes.io/pod-uid"] == f"[{pod_uid}]"
    admin.run("delete", "pod", "bound", timeout=20)
    gone = as_token(cluster, "sa-bound", token).run("auth", "whoami")
    assert (gone.returncode, gone.stderr) == (1, "error: You must be logged in to the server (Unauthorized)\n")


# -- auth can-i ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("who", "args", "answer"), [
    ("admin", ["list", "pods"], "yes"),
    ("admin_token", ["delete", "nodes"], "yes"),
    ("admin", ["*", "*"], "yes"),
    ("admin", ["create", "pods", "--subresource=exec"], "yes"),
    ("alice", ["list", "pods"], "no"),
    ("alice", ["get", "pods", "-n", "kube-system"], "no"),
    ("alice", ["create", "pods", "--subresource=exec"], "no"),
    ("alice", ["create", "selfsubjectaccessreviews.authorization.k8s.io"], "yes"),
    ("alice", ["get", "/healthz"], "yes"),
    ("alice", ["get", "/version"], "yes"),
    ("alice", ["get", "/metrics"], "no"),
    ("alice", ["post", "/healthz"], "no"),
], ids=["admin-list-pods", "token-delete-nodes", "admin-everything", "admin-exec", "alice-list-pods",
        "alice-kube-system", "alice-exec", "alice-self-review", "alice-healthz", "alice-version", "alice-metrics",
        "alice-post-healthz"])
def test_can_i(request: pytest.FixtureRequest, who: str, args: list[str], answer: str) -> None:
    proc = request.getfixturevalue(who).run("auth", "can-i", *args)
    assert (proc.stdout, proc.returncode) == (f"{answer}\n", 0 if answer == "yes" else 1), proc.stderr


def _rules(out: str) -> list[list[str]]:
    lines = out.splitlines()
    assert lines[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    return [re.split(r"\s{2,}", line.strip()) for line in lines[1:]]


def test_can_i_list_admin(admin: Kubectl) -> None:
    rules = _rules(admin.ok("auth", "can-i", "--list"))
    assert ["*.*", "[]", "[]", "[*]"] in rules
    assert ["[*]", "[]", "[*]"] in rules  # non-resource rule: no Resources cell


def test_can_i_list_unprivileged(alice: Kubectl) -> None:
    rules = _rules(alice.ok("auth", "can-i", "--list"))
    assert ["selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]"] in rules
    assert ["selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"] in rules
    assert ["[/healthz]", "[]", "[get]"] in rules and ["[/version]", "[]", "[get]"] in rules
    assert not any(rule[0] in ("*.*", "pods") for rule in rules)


# -- create token --------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "audiences", "seconds"), [
    ([], [ISSUER], 3600),
    (["--duration", "10m"], [ISSUER], 600),
    (["--duration", "2h"], [ISSUER], 7200),
    (["--audience", "vault"], ["vault"], 3600),
    (["--audience", "a", "--audience", "b", "--duration", "15m"], ["a", "b"], 900),
], ids=["defaults", "ten-minutes", "two-hours", "one-audience", "two-audiences"])
def test_create_token_claims(kc: Kubectl, args: list[str], audiences: list[str], seconds: int) -> None:
    token = kc.ok("create", "token", "default", *args).strip()
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "ES256" and header["kid"]  # the lab's sa.key is P-256
    got = claims(token)
    assert got["iss"] == ISSUER and got["aud"] == audiences
    assert got["exp"] - got["iat"] == seconds and got["nbf"] == got["iat"]
    assert got["sub"] == "system:serviceaccount:default:default"
    assert got["kubernetes.io"] == {"namespace": "default",
                                    "serviceaccount": {"name": "default", "uid": sa_uid(kc, "default")}}


@pytest.fixture(scope="module")
def ext_pod(admin: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Pod ``ext`` (service account ``default``); its uid."""
    apply(admin, tmp_path_factory.mktemp("ext"), {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ext", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})
    return admin.ok("get", "pod", "ext", "-o", "jsonpath={.metadata.uid}")


POD_BOUND = ["--bound-object-kind", "Pod", "--bound-object-name", "ext"]
ONE_YEAR = 365 * 24 * 3600


@pytest.mark.parametrize(("args", "lifetime", "warnafter"), [
    ([*POD_BOUND, "--duration", "3607s"], ONE_YEAR, 3607),
    (["--duration", "3607s"], 3607, None),
    ([*POD_BOUND, "--duration", "3600s"], 3600, None),
    ([*POD_BOUND, "--duration", "3607s", "--audience", "vault"], 3607, None),
], ids=["kubelet-like-extended", "not-pod-bound", "not-3607", "foreign-audience"])
def test_create_token_extended_expiration(admin: Kubectl, ext_pod: str, args: list[str], lifetime: int,
                                          warnafter: int | None) -> None:
    """--service-account-extend-token-expiration (default true): a pod-bound 3607 s request for the
    apiserver's own audience is valid for a year, warns after 3607 s, and is answered as 3607 s."""
    answer = json.loads(admin.ok("create", "token", "default", *args, "-o", "json"))
    got = claims(answer["status"]["token"])
    assert got["exp"] - got["iat"] == lifetime
    assert got["kubernetes.io"].get("warnafter") == (got["iat"] + warnafter if warnafter else None)
    assert answer["spec"]["expirationSeconds"] == int(args[args.index("--duration") + 1].rstrip("s"))
    expires = dt.datetime.fromisoformat(answer["status"]["expirationTimestamp"].replace("Z", "+00:00"))
    assert expires.timestamp() == got["iat"] + answer["spec"]["expirationSeconds"]  # what the kubelet refreshes by


def test_an_extended_token_used_after_warnafter_is_audited_as_stale(cluster: Cluster, admin: Kubectl,
                                                                    ext_pod: str) -> None:
    issuer = ServiceAccountTokenIssuer((cluster.pki / "sa.key").read_bytes(), ISSUER)
    issued = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    token, _ = issuer.issue("default", "default", sa_uid(admin, "default"), [ISSUER], ONE_YEAR,
                            ("Pod", "ext", ext_pod), now=issued, warn_after_seconds=3607)
    sa = as_token(cluster, "sa-stale", token)
    assert whoami(sa)["Username"] == "system:serviceaccount:default:default"  # stale is not invalid
    events = [json.loads(line) for line in (cluster.root / "audit.log").read_text().splitlines()]
    stale = [e["annotations"]["authentication.k8s.io/stale-token"] for e in events
             if "authentication.k8s.io/stale-token" in e.get("annotations", {})]
    assert stale, "no audit event carries authentication.k8s.io/stale-token"
    late = int(re.fullmatch(r"subject: system:serviceaccount:default:default, seconds after warning threshold: "
                            r"(\d+)", stale[-1]).group(1))  # type: ignore[union-attr]
    assert 2 * 3600 - 3607 <= late < 2 * 3600 - 3607 + 120


def test_token_for_another_audience_is_not_accepted_by_the_apiserver(cluster: Cluster, admin: Kubectl) -> None:
    token = admin.ok("create", "token", "default", "--audience", "vault").strip()
    proc = as_token(cluster, "sa-vault", token).run("auth", "whoami")
    assert (proc.returncode, proc.stderr) == (1, "error: You must be logged in to the server (Unauthorized)\n")


def test_token_for_a_service_account_in_another_namespace(cluster: Cluster, admin: Kubectl) -> None:
    admin.ok("create", "namespace", "robots")
    assert admin.ok("create", "serviceaccount", "builder", "-n", "robots") == "serviceaccount/builder created\n"
    token = admin.ok("create", "token", "builder", "-n", "robots").strip()
    me = whoami(as_token(cluster, "sa-builder", token))
    assert me["Username"] == "system:serviceaccount:robots:builder"
    assert me["Groups"] == "[system:serviceaccounts system:serviceaccounts:robots system:authenticated]"


def test_service_account_token_kubeconfig_is_subject_to_rbac(cluster: Cluster, admin: Kubectl) -> None:
    sa = as_token(cluster, "sa-rbac", admin.ok("create", "token", "default").strip())
    proc = sa.run("get", "pods")
    assert proc.stderr == ('Error from server (Forbidden): pods is forbidden: User '
                           '"system:serviceaccount:default:default" cannot list resource "pods" in API group "" in '
                           'the namespace "default"\n')
    assert sa.run("auth", "can-i", "create", "selfsubjectreviews.authentication.k8s.io").stdout == "yes\n"


def test_secret_bound_token_dies_with_its_secret(cluster: Cluster, admin: Kubectl) -> None:
    admin.ok("create", "secret", "generic", "anchor", "--from-literal=k=v")
    token = admin.ok("create", "token", "default", "--bound-object-kind", "Secret",
                     "--bound-object-name", "anchor").strip()
    secret_uid = admin.ok("get", "secret", "anchor", "-o", "jsonpath={.metadata.uid}")
    assert claims(token)["kubernetes.io"]["secret"] == {"name": "anchor", "uid": secret_uid}
    sa = as_token(cluster, "sa-secret-bound", token)
    assert whoami(sa)["Username"] == "system:serviceaccount:default:default"
    admin.ok("delete", "secret", "anchor")
    assert sa.run("auth", "whoami").stderr == "error: You must be logged in to the server (Unauthorized)\n"


@pytest.fixture(scope="module")
def other_sa_and_pod(admin: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> None:
    """ServiceAccount ``other`` and pod ``runs-as-default`` (which runs as ``default``), in default."""
    admin.ok("create", "sa", "other")
    apply(admin, tmp_path_factory.mktemp("pod"), {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "runs-as-default", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]}})


@pytest.mark.parametrize(("args", "message"), [
    (["nosuch"], 'serviceaccounts "nosuch" not found'),
    (["default", "--duration", "1m"], 'TokenRequest.authentication.k8s.io "default" is invalid: '
                                      "spec.expirationSeconds: Invalid value: 60: may not specify a duration less "
                                      "than 10 minutes"),
    (["default", "--bound-object-kind", "Pod", "--bound-object-name", "nope"], 'pods "nope" not found'),
    (["default", "--bound-object-kind", "Secret", "--bound-object-name", "nope"], 'secrets "nope" not found'),
    (["other", "--bound-object-kind", "Pod", "--bound-object-name", "runs-as-default"],
     'cannot bind token for serviceaccount "other" to pod running with different serviceaccount name.'),
], ids=["missing-sa", "too-short", "missing-pod", "missing-secret", "pod-of-another-sa"])
def test_create_token_refused(admin: Kubectl, other_sa_and_pod: None, args: list[str], message: str) -> None:
    proc = admin.run("create", "token", *args)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == f"error: failed to create token: {message}\n"


# -- RBAC ----------------------------------------------------------------------------------------


def _role(name: str, namespace: str, resources: list[str], verbs: list[str], group: str = "") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": namespace},
            "rules": [{"apiGroups": [group], "resources": resources, "verbs": verbs}]}


def _binding(name: str, namespace: str, role: str, user: str = "alice", kind: str = "Role") -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": namespace},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}


def test_role_binding_grants_alice_pods_in_one_namespace(admin: Kubectl, alice: Kubectl, tmp_path: Path) -> None:
    ns = "team-a"
    admin.ok("create", "namespace", ns)
    out = apply(admin, tmp_path, _role("pod-reader", ns, ["pods"], ["get", "list"]),
                _binding("alice-reads-pods", ns, "pod-reader"))
    assert out == ("role.rbac.authorization.k8s.io/pod-reader created\n"
                   "rolebinding.rbac.authorization.k8s.io/alice-reads-pods created\n")
    empty = alice.run("get", "pods", "-n", ns)
    assert (empty.returncode, empty.stderr) == (0, f"No resources found in {ns} namespace.\n")
    admin.ok("run", "web", "--image=nginx", "-n", ns)
    assert alice.ok("get", "pods", "-n", ns, "-o", "name") == "pod/web\n"
    assert alice.ok("get", "pod", "web", "-n", ns, "-o", "jsonpath={.spec.containers[0].image}") == "nginx"
    assert alice.run("auth", "can-i", "list", "pods", "-n", ns).stdout == "yes\n"

    elsewhere = alice.run("get", "pods")
    assert (elsewhere.returncode, elsewhere.stderr) == (1, (
        'Error from server (Forbidden): pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
        'in the namespace "default"\n'))
    delete = alice.run("delete", "pod", "web", "-n", ns)
    assert delete.stderr == ('Error from server (Forbidden): pods "web" is forbidden: User "alice" cannot delete '
                             f'resource "pods" in API group "" in the namespace "{ns}"\n')
    secrets = alice.run("get", "secrets", "-n", ns)
    assert secrets.stderr == ('Error from server (Forbidden): secrets is forbidden: User "alice" cannot list '
                              f'resource "secrets" in API group "" in the namespace "{ns}"\n')

    admin.ok("delete", "rolebinding", "alice-reads-pods", "-n", ns)
    assert alice.run("get", "pods", "-n", ns).returncode == 1


def test_imperative_role_and_rolebinding(kc: Kubectl, alice: Kubectl, request: pytest.FixtureRequest) -> None:
    """``kubectl create role|rolebinding`` send protobuf bodies (PROTOCOLS.md 1.5)."""
    ns = f"imperative-rbac-{request.node.callspec.id}"
    kc.ok("create", "namespace", ns)
    assert kc.ok("create", "role", "cm-reader", "-n", ns, "--verb=get,list", "--resource=configmaps",
                 "--resource-name=public") == "role.rbac.authorization.k8s.io/cm-reader created\n"
    assert kc.ok("create", "rolebinding", "alice-cm", "-n", ns, "--role=cm-reader",
                 "--user=alice") == "rolebinding.rbac.authorization.k8s.io/alice-cm created\n"
    role = kc.json("get", "role", "cm-reader", "-n", ns)
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["public"],
                              "verbs": ["get", "list"]}]
    binding = kc.ok("get", "rolebinding", "alice-cm", "-n", ns, "-o", "wide").splitlines()[1].split()
    assert binding[:2] == ["alice-cm", "Role/cm-reader"] and binding[3] == "alice"
    kc.ok("create", "configmap", "public", "-n", ns, "--from-literal=a=1")
    kc.ok("create", "configmap", "private", "-n", ns, "--from-literal=b=2")
    assert alice.ok("get", "cm", "public", "-n", ns, "-o", "jsonpath={.data.a}") == "1"
    assert alice.run("get", "cm", "private", "-n", ns).stderr == (
        'Error from server (Forbidden): configmaps "private" is forbidden: User "alice" cannot get resource '
        f'"configmaps" in API group "" in the namespace "{ns}"\n')


def test_cluster_role_binding_to_a_group(admin: Kubectl, alice: Kubectl) -> None:
    admin.ok("create", "clusterrole", "node-lister", "--verb=list", "--resource=nodes")
    out = admin.ok("create", "clusterrolebinding", "developers-list-nodes", "--clusterrole=node-lister",
                   "--group=developers")
    assert out == "clusterrolebinding.rbac.authorization.k8s.io/developers-list-nodes created\n"
    assert alice.run("get", "nodes").returncode == 0
    admin.ok("delete", "clusterrolebinding", "developers-list-nodes")
    assert alice.run("get", "nodes").stderr == ('Error from server (Forbidden): nodes is forbidden: User "alice" '
                                                'cannot list resource "nodes" in API group "" at the cluster scope\n')


@pytest.fixture(scope="module")
def role_maker(admin: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Namespace ``escalation`` where alice may create roles and rolebindings and read pods, nothing more."""
    ns = "escalation"
    admin.ok("create", "namespace", ns)
    rules = [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
              "verbs": ["create"]}, {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    role = {**_role("role-maker", ns, [], []), "rules": rules}
    apply(admin, tmp_path_factory.mktemp("rbac"), role, _binding("alice-makes-roles", ns, "role-maker"))
    return ns


def test_escalation_role_with_more_than_you_hold(alice: Kubectl, role_maker: str, tmp_path: Path) -> None:
    path = tmp_path / "role.yaml"
    path.write_text(yaml.safe_dump(_role("secret-reader", role_maker, ["secrets"], ["get"])))
    proc = alice.run("create", "-f", str(path))
    assert proc.returncode == 1
    assert proc.stderr == (
        'Error from server (Forbidden): error when creating "' + str(path) + '": roles.rbac.authorization.k8s.io '
        '"secret-reader" is forbidden: user "alice" (groups=["developers" "system:authenticated"]) is attempting to '
        'grant RBAC permissions not currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}\n')


def test_escalation_imperative(alice: Kubectl, role_maker: str) -> None:
    proc = alice.run("create", "role", "wildcard", "-n", role_maker, "--verb=*", "--resource=pods")
    assert proc.returncode == 1
    assert "is attempting to grant RBAC permissions not currently held" in proc.stderr


def test_role_within_your_own_permissions_is_allowed(alice: Kubectl, role_maker: str) -> None:
    assert alice.ok("create", "role", "pod-peeker", "-n", role_maker, "--verb=get",
                    "--resource=pods") == "role.rbac.authorization.k8s.io/pod-peeker created\n"


def test_escalation_binding_to_a_bigger_role(alice: Kubectl, role_maker: str) -> None:
    proc = alice.run("create", "rolebinding", "alice-admin", "-n", role_maker, "--clusterrole=admin", "--user=alice")
    assert proc.returncode == 1
    assert proc.stderr.startswith('error: failed to create rolebinding: rolebindings.rbac.authorization.k8s.io '
                                  '"alice-admin" is forbidden: user "alice" (groups=["developers" '
                                  '"system:authenticated"]) is attempting to grant RBAC permissions not currently '
                                  "held:\n"), proc.stderr


def test_bind_verb_allows_binding_a_bigger_role(admin: Kubectl, alice: Kubectl, role_maker: str,
                                                tmp_path: Path) -> None:
    binder = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
              "metadata": {"name": "may-bind-view", "namespace": role_maker},
              "rules": [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                         "verbs": ["bind"], "resourceNames": ["view"]}]}
    apply(admin, tmp_path, binder, _binding("alice-may-bind-view", role_maker, "may-bind-view"))
    assert alice.ok("create", "rolebinding", "alice-view", "-n", role_maker, "--clusterrole=view",
                    "--user=alice") == "rolebinding.rbac.authorization.k8s.io/alice-view created\n"
    assert alice.run("auth", "can-i", "list", "configmaps", "-n", role_maker).stdout == "yes\n"
    assert alice.run("create", "rolebinding", "alice-edit", "-n", role_maker, "--clusterrole=edit",
                     "--user=alice").returncode == 1


# -- certificates --------------------------------------------------------------------------------


def csr_manifest(name: str, *, cn: str = "system:node:node9", orgs: tuple[str, ...] = ("system:nodes",),
                 signer: str = CLIENT_SIGNER, **spec: Any) -> dict[str, Any]:
    request = make_csr(make_key("ec"), cn, orgs)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": base64.b64encode(request).decode(), "signerName": signer,
                     "usages": ["digital signature", "client auth"], **spec}}


def csr_row(kubectl: Kubectl, name: str) -> list[str]:
    table = kubectl.ok("get", "csr", name).splitlines()
    assert table[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    return table[1].split()


@pytest.fixture(scope="module")
def bootstrapper(cluster: Cluster, admin: Kubectl, tmp_path_factory: pytest.TempPathFactory) -> tuple[Kubectl, str]:
    """The kubelet's bootstrap kubeconfig, after publishing its token Secret as ``kubeadm init`` does."""
    token_id, secret = (cluster.root / "bootstrap-token").read_text().strip().split(".")
    apply(admin, tmp_path_factory.mktemp("bootstrap"), {
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true",
                       "usage-bootstrap-signing": "true",
                       "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token"}})
    return cluster.kubectl("bootstrap-kubelet.conf"), f"system:bootstrap:{token_id}"


@pytest.mark.parametrize("creator", ["admin", "admin_token", "bootstrapper"])
def test_csr_is_pending_with_its_requestor(request: pytest.FixtureRequest, creator: str, tmp_path: Path) -> None:
    kubectl = request.getfixturevalue(creator)
    kubectl, requestor = kubectl if isinstance(kubectl, tuple) else (kubectl, whoami(kubectl)["Username"])
    name = f"node9-{creator}"
    assert apply(kubectl, tmp_path, csr_manifest(name, expirationSeconds=86400)) == f"{CSR_PREFIX}/{name} created\n"
    assert csr_row(kubectl, name)[:1] + csr_row(kubectl, name)[2:] == [name, CLIENT_SIGNER, requestor, "24h",
                                                                       "Pending"]


def test_csr_requestor_identity_cannot_be_spoofed(bootstrapper: tuple[Kubectl, str],
                                                  tmp_path: Path) -> None:
    kubectl, requestor = bootstrapper
    spoof = csr_manifest("spoofed", username="kubernetes-admin", groups=["system:masters"], uid="0")
    apply(kubectl, tmp_path, spoof)
    spec = kubectl.json("get", "csr", "spoofed")["spec"]
    assert spec["username"] == requestor
    assert spec["groups"] == ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
                              "system:authenticated"]
    assert spec.get("uid", "") != "0"


def test_bootstrap_token_may_create_csrs_and_nothing_else(bootstrapper: tuple[Kubectl, str]) -> None:
    kubectl, requestor = bootstrapper
    assert whoami(kubectl)["Username"] == requestor
    assert kubectl.run("auth", "can-i", "create", "certificatesigningrequests").stdout == "yes\n"
    proc = kubectl.run("get", "pods")
    assert proc.stderr == (f'Error from server (Forbidden): pods is forbidden: User "{requestor}" cannot list '
                           'resource "pods" in API group "" in the namespace "default"\n')


def test_certificate_approve_and_deny(kc: Kubectl, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    good, bad = f"approve-me-{request.node.callspec.id}", f"deny-me-{request.node.callspec.id}"
    apply(kc, tmp_path, csr_manifest(good), csr_manifest(bad))
    assert kc.ok("certificate", "approve", good) == f"{CSR_PREFIX}/{good} approved\n"
    assert kc.ok("certificate", "deny", bad) == f"{CSR_PREFIX}/{bad} denied\n"
    assert csr_row(kc, bad)[-1] == "Denied"
    # the controller-manager's signer issues the approved one (a cross-process effect: poll)
    deadline = time.monotonic() + 20
    while csr_row(kc, good)[-1] != "Approved,Issued" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert csr_row(kc, good)[-1] == "Approved,Issued"
    assert kc.json("get", "csr", good)["status"]["certificate"]

    (approved,) = kc.json("get", "csr", good)["status"]["conditions"]
    assert {k: approved[k] for k in ("type", "status", "reason", "message")} == {
        "type": "Approved", "status": "True", "reason": "KubectlApprove",
        "message": "This CSR was approved by kubectl certificate approve."}
    (denied,) = kc.json("get", "csr", bad)["status"]["conditions"]
    assert (denied["type"], denied["reason"]) == ("Denied", "KubectlDeny")

    again = kc.run("certificate", "approve", bad)
    assert (again.returncode, again.stderr) == (1, f'error: certificate signing request "{bad}" is already Denied\n')
    assert kc.ok("certificate", "approve", good) == f"{CSR_PREFIX}/{good} approved\n"  # idempotent


def test_certificate_approve_as_alice_is_forbidden(admin: Kubectl, alice: Kubectl, tmp_path: Path) -> None:
    apply(admin, tmp_path, csr_manifest("not-yours"))
    proc = alice.run("certificate", "approve", "not-yours")
    assert proc.returncode == 1
    assert proc.stderr == ('Error from server (Forbidden): certificatesigningrequests.certificates.k8s.io "not-yours" '
                           'is forbidden: User "alice" cannot get resource "certificatesigningrequests" in API group '
                           '"certificates.k8s.io" at the cluster scope\n')
    assert csr_row(admin, "not-yours")[-1] == "Pending"


def test_approver_needs_the_signer_approve_verb(admin: Kubectl, cluster: Cluster, tmp_path: Path) -> None:
    """Updating ``/approval`` is not enough: the approver also needs ``approve`` on ``signers/<signerName>``."""
    admin.ok("create", "clusterrole", "csr-approval", "--verb=get,list",
             "--resource=certificatesigningrequests.certificates.k8s.io")
    admin.ok("create", "clusterrole", "csr-approval-update", "--verb=update",
             "--resource=certificatesigningrequests.certificates.k8s.io/approval")
    admin.ok("create", "clusterrolebinding", "bob-csr", "--clusterrole=csr-approval", "--user=bob")
    admin.ok("create", "clusterrolebinding", "bob-csr-update", "--clusterrole=csr-approval-update", "--user=bob")
    apply(admin, tmp_path, csr_manifest("needs-signer"))
    bob = _cert_user(cluster, "bob")

    proc = bob.run("certificate", "approve", "needs-signer")
    assert proc.stderr == ('Error from server (Forbidden): certificatesigningrequests.certificates.k8s.io '
                           f'"needs-signer" is forbidden: user not permitted to approve requests with signerName '
                           f'"{CLIENT_SIGNER}"\n')
    assert csr_row(admin, "needs-signer")[-1] == "Pending"

    # signers is not a served resource, so kubectl create clusterrole refuses it: write the YAML
    apply(admin, tmp_path, {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                            "metadata": {"name": "kubelet-signer-approver"},
                            "rules": [{"apiGroups": ["certificates.k8s.io"], "resources": ["signers"],
                                       "resourceNames": [CLIENT_SIGNER], "verbs": ["approve"]}]})
    admin.ok("create", "clusterrolebinding", "bob-signer", "--clusterrole=kubelet-signer-approver", "--user=bob")
    assert bob.ok("certificate", "approve", "needs-signer") == f"{CSR_PREFIX}/needs-signer approved\n"


def _cert_user(cluster: Cluster, user: str, groups: tuple[str, ...] = ()) -> Kubectl:
    """A client-certificate kubeconfig for ``user`` signed by the cluster CA (``kubeadm kubeconfig user``)."""
    ca_cert, ca_key = read_cert(cluster.pki / "ca.crt"), read_key(cluster.pki / "ca.key")
    key = make_key("ec")
    cert = issue_cert(ca_cert, ca_key, key.public_key(), user, groups, client=True)
    config = build_kubeconfig(server=cluster.url, ca_pem=dump_cert_pem(ca_cert), user=user,
                              credential=ClientCertData(dump_cert_pem(cert), dump_key_pem(key)))
    path = cluster.root / f"cert-{user}.conf"
    path.write_text(json.dumps(config))
    return cluster.kubectl(path)
