"""The plugin's fixtures: servers configured by flags, identities of every kind, and every way to use one."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from miniapi.testing import (
    FlagError,
    KitAPIServer,
    assert_allowed,
    assert_forbidden,
    assert_unauthenticated,
    objects,
)

SECRETS = "/api/v1/namespaces/default/secrets"


async def test_default_server_is_kubeadm_like(apiserver: KitAPIServer) -> None:
    cfg = apiserver.config
    assert cfg.authorization_mode == ("Node", "RBAC")
    assert cfg.anonymous_auth is True  # the real default, kept
    assert cfg.enable_bootstrap_token_auth and cfg.client_ca_file and cfg.token_auth_file
    assert apiserver.port > 0 and apiserver.url == f"https://127.0.0.1:{apiserver.port}"
    assert_allowed(await apiserver.admin.get(SECRETS), authenticator="x509", user="kubernetes-admin")


@pytest.mark.apiserver(anonymous_auth=False)
async def test_marker_sets_flags(apiserver: KitAPIServer) -> None:
    assert apiserver.config.anonymous_auth is False
    assert_unauthenticated(await apiserver.anonymous.get("/version"), "no credentials provided")


@pytest.mark.apiserver("--authorization-mode=AlwaysAllow")
async def test_marker_takes_argv_strings(apiserver: KitAPIServer) -> None:
    assert_allowed(await apiserver.anonymous.get(SECRETS), reason="", user="system:anonymous")


def test_factory_gives_independent_servers(apiserver_factory) -> None:  # type: ignore[no-untyped-def]
    strict = apiserver_factory(authorization_mode=["RBAC"], anonymous_auth=False, enable_bootstrap_token_auth=None)
    loose = apiserver_factory("--authorization-mode=AlwaysAllow")
    assert strict.port != loose.port
    assert strict.config.enable_bootstrap_token_auth is False  # None: back to the CLI default
    assert_unauthenticated(strict.anonymous.sync.get(SECRETS))
    assert_allowed(loose.anonymous.sync.get(SECRETS))


def test_flags_are_checked_like_the_cli(apiserver_factory) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FlagError, match="unknown apiserver flag"):
        apiserver_factory(anonymous_authentication=False)
    with pytest.raises(FlagError, match="unknown mode 'ABAC'"):
        apiserver_factory(authorization_mode="ABAC")
    with pytest.raises(FlagError, match="--flag=value"):
        apiserver_factory("--authorization-mode", "RBAC")


def test_empty_file_flag_switches_an_authenticator_off(apiserver_factory) -> None:  # type: ignore[no-untyped-def]
    api = apiserver_factory(client_ca_file="")
    # no --client-ca-file: a certificate is nobody's credential, so the request is anonymous
    assert_forbidden(api.as_user("alice").sync.get(SECRETS), user="system:anonymous")
    api.ensure_namespace("setup-still-works")  # the admin falls back to a token-file user
    assert api.admin.authenticator == "token-file"


@pytest.fixture(scope="module")
def shared(module_apiserver_factory) -> KitAPIServer:  # type: ignore[no-untyped-def]
    return module_apiserver_factory(authorization_mode="RBAC")


def test_module_server_keeps_state_1(shared: KitAPIServer) -> None:
    shared.create(objects.namespace("kept"), exist_ok=True)


def test_module_server_keeps_state_2(shared: KitAPIServer) -> None:
    assert shared.admin.sync.get("/api/v1/namespaces/kept").status == 200


@pytest.mark.parametrize("via", ["cert", "token"])
async def test_as_user(as_user, via: str) -> None:  # type: ignore[no-untyped-def]
    alice = as_user("alice", groups=["dev", "qa"], via=via)
    who = await alice.whoami()
    assert who["username"] == "alice"
    assert who["groups"] == ["dev", "qa", "system:authenticated"]
    assert_forbidden(await alice.get(SECRETS), reason="", user="alice",
                     authenticator="x509" if via == "cert" else "token-file")


async def test_token_users_added_after_start_and_revoked(apiserver: KitAPIServer) -> None:
    bob = apiserver.as_user("bob", via="token", uid="u-bob")
    carol = apiserver.as_user("carol", ["ops"], via="token")
    assert (await bob.whoami())["uid"] == "u-bob"
    assert (await carol.whoami())["groups"] == ["ops", "system:authenticated"]
    apiserver.revoke_token(bob.token or "")
    assert_unauthenticated(await bob.get("/version"), "invalid bearer token")
    assert (await carol.whoami())["username"] == "carol"
    with pytest.raises(ValueError, match="without commas"):
        apiserver.as_user("eve", ["a,b"], via="token")


async def test_service_account_tokens(apiserver: KitAPIServer) -> None:
    plain = apiserver.as_service_account("builder", namespace="ci")
    bound = apiserver.as_service_account("builder", namespace="ci", pod="job-1", node="node1")
    who = await plain.whoami()
    assert who["username"] == "system:serviceaccount:ci:builder"
    assert "authentication.kubernetes.io/pod-name" not in who.get("extra", {})
    extra = (await bound.whoami())["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["job-1"]
    assert extra["authentication.kubernetes.io/node-name"] == ["node1"]
    assert apiserver.admin.sync.get("/api/v1/namespaces/ci/pods/job-1").json["spec"]["nodeName"] == "node1"
    assert_forbidden(await bound.get("/api/v1/namespaces/ci/pods"), authenticator="service-account")


async def test_bootstrap_token_may_create_csrs(apiserver: KitAPIServer) -> None:
    joiner = apiserver.as_bootstrap_token()
    assert (await joiner.whoami())["groups"] == [
        "system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token", "system:authenticated"]
    resp = await joiner.get("/apis/certificates.k8s.io/v1/certificatesigningrequests")
    assert_allowed(resp, reason=re.compile(r'ClusterRole "system:node-bootstrapper" to Group "system:bootstrappers"'),
                   authenticator="bootstrap-token")
    assert_forbidden(await joiner.get(SECRETS), user=joiner.username)


async def test_nodes_and_anonymous(apiserver: KitAPIServer) -> None:
    kubelet = apiserver.as_node("node1")
    assert (await kubelet.whoami())["groups"] == ["system:nodes", "system:authenticated"]
    assert_forbidden(await kubelet.get("/api/v1/namespaces/default/secrets/x"),
                     reason="no relationship found between node 'node1' and this object")
    assert_allowed(await apiserver.anonymous.get("/version"), reason="system:public-info-viewer")
    assert_forbidden(await apiserver.anonymous.get(SECRETS), user="system:anonymous")


async def test_session_and_kube_client(apiserver: KitAPIServer) -> None:
    async with apiserver.admin.session() as session, session.get(SECRETS) as resp:
        assert resp.status == 200
    async with apiserver.admin.kube_client() as kc:
        assert (await kc.list("namespaces"))["kind"] == "NamespaceList"


def test_kubeconfig_drives_the_real_kubectl(apiserver: KitAPIServer) -> None:
    apiserver.create(objects.role("pod-reader", [{"apiGroups": [""], "resources": ["pods"],
                                                  "verbs": ["get", "list"]}], namespace="default"))
    apiserver.create(objects.role_binding("alice-reads", "pod-reader", users=["alice"], namespace="default"))
    alice = apiserver.as_user("alice")
    assert alice.kubectl("auth", "whoami", "-o", "json", check=True).stdout.count('"alice"') == 1
    assert alice.kubectl("get", "pods", check=True).returncode == 0
    denied = alice.kubectl("get", "secrets")
    assert denied.returncode != 0 and "forbidden" in denied.stderr
    event = apiserver.last_audit_event(user="alice", resource="secrets")
    assert_forbidden(event, reason="")
    token = apiserver.as_user("tokenuser", via="token").kubectl("auth", "whoami", "-o", "json", check=True)
    assert json.loads(token.stdout)["status"]["userInfo"]["username"] == "tokenuser"
    anon = apiserver.anonymous.kubectl("get", "--raw", "/version", check=True)
    assert "gitVersion" in anon.stdout


async def test_official_python_client(apiserver: KitAPIServer) -> None:
    from kubernetes import client

    sa = apiserver.as_service_account("app")
    core = client.CoreV1Api(sa.api_client())
    with pytest.raises(client.ApiException) as denied:
        await asyncio.to_thread(core.list_namespaced_secret, "default")  # or call it directly
    assert denied.value.status == 403
    assert_forbidden(apiserver.last_audit_event(user=sa.username, resource="secrets"))
    ns = client.CoreV1Api(apiserver.admin.api_client()).list_namespace()  # sync from an async test works too
    assert "kube-system" in [n.metadata.name for n in ns.items]


async def test_asserts_check_the_reason_not_only_the_code(as_user) -> None:  # type: ignore[no-untyped-def]
    resp = await as_user("alice").get(SECRETS)
    with pytest.raises(AssertionError, match="to be ALLOWED, but the apiserver answered 403") as err:
        assert_allowed(resp, hint="bind a role")
    assert "authorization.k8s.io/decision: 'forbid'" in str(err.value) and "hint: bind a role" in str(err.value)
    with pytest.raises(AssertionError, match="does not match 'RBAC: allowed'"):
        assert_forbidden(resp, reason="RBAC: allowed")
    with pytest.raises(AssertionError, match="saw user 'alice', not 'bob'"):
        assert_forbidden(resp, user="bob")
    with pytest.raises(AssertionError, match="UNAUTHENTICATED"):
        assert_unauthenticated(resp)
    assert resp.audit_event()["user"]["username"] == "alice"
