"""Reading the fixture apiserver's audit log: the ``audit.k8s.io/v1`` Events it kept in memory.

Each Event says who asked (``user``), what (``verb``, ``objectRef``, ``requestURI``), the answer
(``responseStatus.code``) and why, in its annotations::

    authorization.k8s.io/decision        allow | forbid
    authorization.k8s.io/reason          RBAC: allowed by RoleBinding "read-pods/dev" of Role ...
    authentication.k8s.io/authenticator  x509 | token-file | service-account | bootstrap-token
    authentication.k8s.io/error          (401s) x509: certificate has expired or is not yet valid ...

A 401 carries no authorization annotations: the request never reached an authorizer.
"""

from __future__ import annotations

from typing import Any

Event = dict[str, Any]
DECISION = "authorization.k8s.io/decision"
REASON = "authorization.k8s.io/reason"
AUTHENTICATOR = "authentication.k8s.io/authenticator"
AUTHN_ERROR = "authentication.k8s.io/error"


class AuditView:
    """Queries over a server's audit events (``audit_snapshot`` supplies them)."""

    def audit_snapshot(self) -> list[Event]:
        raise NotImplementedError

    def audit_event_by_user_agent(self, user_agent: str) -> Event | None:
        for event in reversed(self.audit_snapshot()):
            if event.get("userAgent") == user_agent:
                return event
        return None

    def audit_events(self, *, user: str | None = None, verb: str | None = None, resource: str | None = None,
                     namespace: str | None = None, name: str | None = None, code: int | None = None,
                     decision: str | None = None, uri_contains: str | None = None) -> list[Event]:
        """Events matching every filter given, oldest first (the ring keeps the last 2000)."""
        out = []
        for event in self.audit_snapshot():
            ref = event.get("objectRef") or {}
            checks = ((user, event.get("user", {}).get("username")), (verb, event.get("verb")),
                      (resource, ref.get("resource")), (namespace, ref.get("namespace")),
                      (name, ref.get("name")), (code, event.get("responseStatus", {}).get("code")),
                      (decision, annotations_of(event).get(DECISION)))
            if any(want is not None and want != have for want, have in checks):
                continue
            if uri_contains is not None and uri_contains not in str(event.get("requestURI", "")):
                continue
            out.append(event)
        return out

    def last_audit_event(self, **filters: Any) -> Event:
        """The newest event matching ``filters`` (see :meth:`audit_events`); LookupError if none."""
        events = self.audit_events(**filters)
        if not events:
            raise LookupError(f"no audit event matches {filters}")
        return events[-1]


def annotations_of(event: Event) -> dict[str, str]:
    value = event.get("annotations") or {}
    return value if isinstance(value, dict) else {}


def describe(event: Event) -> str:
    """The event on a few lines, for assertion messages."""
    user = event.get("user") or {}
    notes = annotations_of(event)
    lines = [f"audit: {event.get('verb') or '?'} {event.get('requestURI')} -> "
             f"{event.get('responseStatus', {}).get('code')}",
             f"  user: {user.get('username', '(none)')} groups={user.get('groups', [])}"]
    for key in (AUTHENTICATOR, AUTHN_ERROR, DECISION, REASON):
        if key in notes:
            lines.append(f"  {key}: {notes[key]!r}")
    return "\n".join(lines)
