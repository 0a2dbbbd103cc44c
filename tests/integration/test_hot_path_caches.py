"""What the request path remembers, driven over real TLS: every remembered answer ends with the write
that changes what it was derived from, on the very next request.

- GET answers (JSON bytes by resourceVersion): update, patch, delete and re-create show at once.
- Service-account tokens: deleting the ServiceAccount is a 401 on the next request.
- Bootstrap tokens: deleting the Secret is a 401 on the next request.
- RBAC decisions: a new or deleted RoleBinding decides the next request (once the index has it).
- Audit: every one of these requests has its Event, with its own code and auditID.
"""

from __future__ import annotations

import base64

from tests.integration.conftest import Pki, client, running

CM = "/api/v1/namespaces/default/configmaps"
RB = "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def test_get_answers_follow_every_write(pki: Pki) -> None:
    async with running(pki.config(), pki) as (srv, admin):
        assert (await admin.call("POST", CM, {"metadata": {"name": "c"}, "data": {"v": "1"}})).status == 201
        first, second = (await admin.call("GET", f"{CM}/c")), (await admin.call("GET", f"{CM}/c"))
        assert first.body == second.body and first.json["data"] == {"v": "1"}
        assert (first.json["kind"], first.json["apiVersion"]) == ("ConfigMap", "v1")
        assert second.headers["Content-Type"] == "application/json"

        updated = {**first.json, "data": {"v": "2"}}
        assert (await admin.call("PUT", f"{CM}/c", updated)).status == 200
        assert (await admin.get_json(f"{CM}/c"))["data"] == {"v": "2"}
        assert (await admin.call("PATCH", f"{CM}/c", {"data": {"v": "3"}},
                                 content_type="application/merge-patch+json")).status == 200
        assert (await admin.get_json(f"{CM}/c"))["data"] == {"v": "3"}

        table = await admin.call("GET", f"{CM}/c", headers={
            "Accept": "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"})
        assert table.json["kind"] == "Table"
        assert (await admin.call("GET", f"{CM}/c?resourceVersion=x")).status == 400

        old_uid = first.json["metadata"]["uid"]
        assert (await admin.call("DELETE", f"{CM}/c")).status == 200
        gone = await admin.call("GET", f"{CM}/c")
        assert gone.status == 404 and gone.is_status()
        assert (await admin.call("POST", CM, {"metadata": {"name": "c"}, "data": {"v": "new"}})).status == 201
        again = await admin.get_json(f"{CM}/c")
        assert again["data"] == {"v": "new"} and again["metadata"]["uid"] != old_uid


async def test_deleted_credentials_fail_the_next_request(pki: Pki) -> None:
    async with running(pki.config(), pki) as (srv, admin):
        assert (await admin.call("POST", "/api/v1/namespaces/default/serviceaccounts",
                                 {"metadata": {"name": "robot"}})).status == 201
        issued = await admin.call("POST", "/api/v1/namespaces/default/serviceaccounts/robot/token",
                                  {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
        assert issued.status == 201
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
                  "metadata": {"name": "bootstrap-token-abcdef", "namespace": "kube-system"},
                  "data": {"token-id": _b64("abcdef"), "token-secret": _b64("0123456789abcdef"),
                           "usage-bootstrap-authentication": _b64("true")}}
        assert (await admin.call("POST", "/api/v1/namespaces/kube-system/secrets", secret)).status == 201

        cases = [(issued.json["status"]["token"], "/api/v1/namespaces/default/serviceaccounts/robot"),
                 ("abcdef.0123456789abcdef", "/api/v1/namespaces/kube-system/secrets/bootstrap-token-abcdef")]
        for token, owner in cases:
            async with client(srv.url, pki.ssl(client_cert=False), token) as caller:
                for _ in range(3):
                    assert (await caller.call("GET", "/version")).status == 200
                assert (await admin.call("DELETE", owner)).status == 200
                denied = await caller.call("GET", "/version")
                assert denied.status == 401 and denied.is_status()
        codes = [e["responseStatus"]["code"] for e in srv.audit.events if e["requestURI"] == "/version"]
        assert codes == [200, 200, 200, 401] * 2
        assert len({e["auditID"] for e in srv.audit.events}) == len(srv.audit.events)


async def test_rbac_changes_decide_the_next_request(pki: Pki) -> None:
    async with running(pki.config(), pki) as (srv, admin):
        assert (await admin.call("POST", CM, {"metadata": {"name": "c"}})).status == 201
        binding = {"metadata": {"name": "alice-view"}, "subjects": [
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cm-reader"}}
        view = {"metadata": {"name": "cm-reader"}, "rules": [
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}
        assert (await admin.call("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", view)).status == 201
        async with client(srv.url, pki.ssl(client_cert=False), pki.token("alice")) as alice:
            assert (await alice.call("GET", f"{CM}/c")).status == 403
            assert (await alice.call("GET", f"{CM}/c")).status == 403
            assert (await admin.call("POST", RB, binding)).status == 201
            await srv.authz_indexes.synced()
            assert (await alice.call("GET", f"{CM}/c")).status == 200
            assert (await alice.call("GET", f"{CM}/c")).status == 200
            assert (await admin.call("DELETE", f"{RB}/alice-view")).status == 200
            await srv.authz_indexes.synced()
            assert (await alice.call("GET", f"{CM}/c")).status == 403
        events = [e for e in srv.audit.events if e["requestURI"] == f"{CM}/c" and e["user"]["username"] == "alice"]
        assert [e["annotations"]["authorization.k8s.io/decision"] for e in events] == [
            "forbid", "forbid", "allow", "allow", "forbid"]
        assert events[2]["annotations"]["authorization.k8s.io/reason"] == (
            'RBAC: allowed by RoleBinding "alice-view/default" of ClusterRole "cm-reader" to User "alice"')
