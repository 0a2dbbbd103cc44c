"""The audit log: one ``audit.k8s.io/v1`` Event per request (level Metadata, stage ResponseComplete).

Events carry who asked (user, groups, source IP), what (verb, objectRef, requestURI), the answer code,
and the authorization decision + reason as annotations, like the real apiserver's
``authorization.k8s.io/decision`` / ``authorization.k8s.io/reason``. They go to ``--audit-log-path``
(JSON lines; ``-`` for stdout) and to a bounded in-memory ring that tests read. Never secrets:
no headers, no bodies.

Cost on the request path: the filters hand over what they already hold (the frozen RequestInfo and
UserInfo, two ``time.time()`` floats, a few strings) as one :class:`Pending` record. With a log file
the Event is built and written at once; without one (the real default) it is built from the record
the first time the ring is read (:attr:`AuditLog.events`), with the same content: the timestamps were
taken on the request path, and the random ``auditID`` is drawn once and then kept.
"""

from __future__ import annotations

import collections
import json
import sys
import time
import uuid
from typing import IO, Any

from miniapi.authz.base import Decision
from miniapi.requestinfo import RequestInfo
from miniapi.user import UserInfo

_second: list[object] = [-1, ""]  # the last whole second formatted, reused within that second


def rfc3339_micro(now: float) -> str:
    """RFC 3339 with microseconds (``2026-11-28T12:00:00.123456Z``) of a ``time.time()`` value."""
    whole = int(now)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def _now() -> str:
    return rfc3339_micro(time.time())


class Pending:
    """What one request's Event is built from; :meth:`event` builds it (once)."""

    __slots__ = ("info", "uri", "user", "source_ip", "user_agent", "code", "received", "completed",
                 "authz", "authn_error", "authenticator", "auth_annotations", "_event")

    def __init__(self, info: RequestInfo | None, uri: str, user: UserInfo | None, source_ip: str,
                 user_agent: str, code: int, received: float, completed: float,
                 authz: tuple[Decision, str] | None, authn_error: str | None, authenticator: str,
                 auth_annotations: tuple[tuple[str, str], ...] = ()) -> None:
        self.info, self.uri, self.user, self.source_ip = info, uri, user, source_ip
        self.user_agent, self.code, self.received, self.completed = user_agent, code, received, completed
        self.authz, self.authn_error, self.authenticator = authz, authn_error, authenticator
        self.auth_annotations = auth_annotations  # the authenticator's own (e.g. a stale token's)
        self._event: dict[str, Any] | None = None

    def event(self) -> dict[str, Any]:
        if self._event is None:
            self._event = build_event(info=self.info, uri=self.uri, user=self.user, source_ip=self.source_ip,
                                      user_agent=self.user_agent, code=self.code,
                                      received=rfc3339_micro(self.received), stage=rfc3339_micro(self.completed),
                                      annotations=audit_annotations(self.authz, self.authn_error, self.authenticator,
                                                                    self.auth_annotations))
        return self._event


def audit_annotations(authz: tuple[Decision, str] | None, authn_error: str | None, authenticator: str,
                      auth_annotations: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    """The authorization decision + reason, the authentication error, the authenticator that said yes and
    its own annotations (``authentication.k8s.io/stale-token``)."""
    out: dict[str, str] = {}
    if authz is not None:
        decision, reason = authz
        out["authorization.k8s.io/decision"] = "allow" if decision is Decision.ALLOW else "forbid"
        out["authorization.k8s.io/reason"] = reason
    if authn_error:
        out["authentication.k8s.io/error"] = authn_error
    if authenticator:
        out["authentication.k8s.io/authenticator"] = authenticator
    out.update(auth_annotations)
    return out


def build_event(*, info: RequestInfo | None, uri: str, user: UserInfo | None, source_ip: str, user_agent: str,
                code: int, received: str, stage: str, annotations: dict[str, str]) -> dict[str, Any]:
    event: dict[str, Any] = {
        "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
        "auditID": str(uuid.uuid4()), "stage": "ResponseComplete", "requestURI": uri,
        "verb": info.verb if info else "", "sourceIPs": [source_ip] if source_ip else [],
        "userAgent": user_agent, "responseStatus": {"metadata": {}, "code": code},
        "requestReceivedTimestamp": received, "stageTimestamp": stage,
        "user": user.to_json() if user else {},
    }
    if info is not None and info.is_resource_request:
        ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
               "apiGroup": info.api_group, "apiVersion": info.api_version,
               "subresource": info.subresource}
        event["objectRef"] = {k: v for k, v in ref.items() if v}
    if annotations:
        event["annotations"] = annotations
    return event


class AuditLog:
    """Where Events go: ``path`` (``--audit-log-path``; ``-`` is stdout) and a ring of the last ``keep``.
    With neither it is not :attr:`enabled`, and the chain has no audit filters (the real WithAudit and
    WithFailedAuthenticationAudit return the handler unchanged when there is no audit backend)."""

    def __init__(self, path: str = "", keep: int = 2000) -> None:
        self._ring: collections.deque[Pending | dict[str, Any]] = collections.deque(maxlen=keep)
        self._file: IO[str] | None = None
        if path == "-":
            self._file = sys.stdout
        elif path:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.enabled = self._file is not None or keep > 0

    @property
    def events(self) -> collections.deque[dict[str, Any]]:
        """The kept Events, oldest first (a snapshot; built from their records on first read)."""
        return collections.deque((e.event() if isinstance(e, Pending) else e for e in self._ring),
                                 maxlen=self._ring.maxlen)

    def record(self, *, info: RequestInfo | None, uri: str, user: UserInfo | None, source_ip: str,
               user_agent: str, code: int, received: str, annotations: dict[str, str]) -> dict[str, Any]:
        """Build, keep and write one Event now (``received`` already formatted)."""
        event = build_event(info=info, uri=uri, user=user, source_ip=source_ip, user_agent=user_agent, code=code,
                            received=received, stage=_now(), annotations=annotations)
        self._keep(event)
        return event

    def add(self, pending: Pending) -> None:
        """The request path's entry point: keep the record; build and write the Event only for a file."""
        if self._file is None:
            self._ring.append(pending)
        else:
            self._keep(pending.event())

    def _keep(self, event: dict[str, Any] | Pending) -> None:
        self._ring.append(event)
        if self._file is not None and isinstance(event, dict):
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None


now_rfc3339_micro = _now
