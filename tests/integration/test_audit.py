"""Audit events (level Metadata, stage ResponseComplete): who asked what, the answer code, and the
authorization decision and reason as annotations; failed authentications (401) are audited too, and
no event carries a credential."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.integration.conftest import Pki, client, running


def last(events: Any, uri: str) -> dict[str, Any]:
    matching = [e for e in events if e["requestURI"] == uri]
    assert matching, f"no audit event for {uri}"
    return matching[-1]


async def test_allow_forbid_and_401_are_audited(pki: Pki, tmp_path: Path) -> None:
    log_path = tmp_path / "audit.log"
    cfg = pki.config(audit_log_path=str(log_path))
    async with running(cfg, pki) as (srv, admin):
        assert (await admin.call("GET", "/api/v1/namespaces/default/services/kubernetes")
                ).status == 200
        async with client(srv.url, pki.ssl(client_cert=False), pki.token("alice")) as alice:
            assert (await alice.call("GET", "/api/v1/nodes?limit=5")).status == 403
            assert (await alice.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", {})
                    ).status == 201
        async with client(srv.url, pki.ssl(client_cert=False), "not-a-token") as bogus:
            assert (await bogus.call("GET", "/api/v1/namespaces")).status == 401
        events = list(srv.audit.events)

    allowed = last(events, "/api/v1/namespaces/default/services/kubernetes")
    assert (allowed["verb"], allowed["responseStatus"]["code"]) == ("get", 200)
    assert allowed["user"]["username"] == "kubernetes-admin"
    assert "system:masters" in allowed["user"]["groups"]
    assert allowed["objectRef"] == {"resource": "services", "namespace": "default",
                                    "name": "kubernetes", "apiVersion": "v1"}
    assert allowed["annotations"]["authorization.k8s.io/decision"] == "allow"
    # system:masters is allowed by the PrivilegedGroups authorizer before RBAC, with no reason (as in kube)
    assert allowed["annotations"]["authorization.k8s.io/reason"] == ""
    assert (allowed["kind"], allowed["apiVersion"], allowed["level"], allowed["stage"]) == (
        "Event", "audit.k8s.io/v1", "Metadata", "ResponseComplete")
    assert allowed["sourceIPs"] == ["127.0.0.1"]

    forbidden = last(events, "/api/v1/nodes?limit=5")
    assert (forbidden["verb"], forbidden["responseStatus"]["code"]) == ("list", 403)
    assert forbidden["user"]["username"] == "alice"
    assert forbidden["annotations"]["authorization.k8s.io/decision"] == "forbid"

    by_rbac = last(events, "/apis/authentication.k8s.io/v1/selfsubjectreviews")
    assert (by_rbac["verb"], by_rbac["responseStatus"]["code"]) == ("create", 201)
    assert by_rbac["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert by_rbac["annotations"]["authorization.k8s.io/reason"] == (
        'RBAC: allowed by ClusterRoleBinding "system:basic-user" of ClusterRole "system:basic-user" to '
        'Group "system:authenticated"')

    unauthorized = last(events, "/api/v1/namespaces")
    assert unauthorized["responseStatus"]["code"] == 401
    assert "authorization.k8s.io/decision" not in unauthorized.get("annotations", {})
    assert unauthorized["user"].get("username") != "system:anonymous"

    on_disk = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [e["auditID"] for e in on_disk] == [e["auditID"] for e in events]
    text = log_path.read_text()
    assert "not-a-token" not in text and pki.token("alice") not in text


async def test_writes_and_errors_are_audited_with_their_codes(pki: Pki) -> None:
    async with running(pki.config(), pki) as (srv, admin):
        created = await admin.call("POST", "/api/v1/namespaces/default/secrets",
                                   {"metadata": {"name": "s"}, "stringData": {"password": "hunter2"}})
        assert created.status == 201
        assert (await admin.call("POST", "/api/v1/namespaces/default/secrets", b"{", content_type=
                                 "application/json")).status == 400
        assert (await admin.call("DELETE", "/api/v1/namespaces/default/secrets/nosuch")).status == 404
        events = list(srv.audit.events)
    codes = [(e["verb"], e["objectRef"].get("name", ""), e["responseStatus"]["code"]) for e in events
             if e.get("objectRef", {}).get("resource") == "secrets"]
    assert codes == [("create", "", 201), ("create", "", 400), ("delete", "nosuch", 404)]
    assert "hunter2" not in json.dumps(events) and "aHVudGVyMg" not in json.dumps(events)


async def test_without_a_backend_there_is_no_audit_and_the_answers_are_the_same(pki: Pki, tmp_path: Path) -> None:
    """The ``miniapi`` command's default (no --audit-log-path, nothing kept in memory): as the real
    WithAudit/WithFailedAuthenticationAudit with no backend, the filters are left out of the chain;
    allow, forbid and 401 answer exactly as with auditing. A log file alone turns them back on."""
    from miniapi.filters.audit import audit_failed_authentication, with_audit

    async def handler(request: Any) -> Any:
        raise AssertionError("not called")

    def audit_filters(srv: Any) -> list[Any]:
        """What the two audit filters make of a handler (build_app wraps its chain with these)."""
        return [wrap(srv.audit)(handler) for wrap in (audit_failed_authentication, with_audit)]

    cfg = pki.config(audit_memory_events=0)
    async with running(cfg, pki) as (srv, admin):
        assert not srv.audit.enabled
        assert (await admin.call("GET", "/api/v1/namespaces/default/services/kubernetes")).status == 200
        async with client(srv.url, pki.ssl(client_cert=False), pki.token("alice")) as alice:
            denied = await alice.call("GET", "/api/v1/nodes?limit=5")
            assert denied.status == 403 and denied.json["reason"] == "Forbidden"
        async with client(srv.url, pki.ssl(client_cert=False), "not-a-token") as bogus:
            refused = await bogus.call("GET", "/api/v1/namespaces")
            assert refused.status == 401 and refused.json["message"] == "Unauthorized"
        assert list(srv.audit.events) == []
        assert audit_filters(srv) == [handler, handler]  # left out: the handler itself

    log_path = tmp_path / "audit.log"
    async with running(pki.config(audit_memory_events=0, audit_log_path=str(log_path)), pki) as (srv, admin):
        assert srv.audit.enabled
        assert (await admin.call("GET", "/api/v1/namespaces/default/services/kubernetes")).status == 200
        assert list(srv.audit.events) == []  # nothing kept in memory...
        assert all(wrapped is not handler and wrapped.__name__ == "audited" for wrapped in audit_filters(srv))
    logged = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any(e["requestURI"] == "/api/v1/namespaces/default/services/kubernetes" for e in logged)  # ...but logged
