"""The audit log: one ``audit.k8s.io/v1`` Event per request (level Metadata, stage ResponseComplete).

Events carry who asked (user, groups, source IP), what (verb, objectRef, requestURI), the answer code,
and the authorization decision + reason as annotations, like the real apiserver's
``authorization.k8s.io/decision`` / ``authorization.k8s.io/reason``. They go to ``--audit-log-path``
(JSON lines; ``-`` for stdout) and to a bounded in-memory ring that tests read. Never secrets:
no headers, no bodies.
"""

from __future__ import annotations

import collections
import json
import sys
import time
import uuid
from typing import IO, Any

from miniapi.requestinfo import RequestInfo
from miniapi.user import UserInfo

_second: list[object] = [-1, ""]  # the last whole second formatted, reused within that second


def _now() -> str:
    """RFC 3339 with microseconds (``2026-11-28T12:00:00.123456Z``); on every request, so cheap."""
    now = time.time()
    whole = int(now)
    if _second[0] != whole:
        _second[0], _second[1] = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return f"{_second[1]}.{int((now - whole) * 1_000_000):06d}Z"


class AuditLog:
    def __init__(self, path: str = "", keep: int = 2000) -> None:
        self.events: collections.deque[dict[str, Any]] = collections.deque(maxlen=keep)
        self._file: IO[str] | None = None
        if path == "-":
            self._file = sys.stdout
        elif path:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def record(self, *, info: RequestInfo | None, uri: str, user: UserInfo | None, source_ip: str,
               user_agent: str, code: int, received: str, annotations: dict[str, str]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": str(uuid.uuid4()), "stage": "ResponseComplete", "requestURI": uri,
            "verb": info.verb if info else "", "sourceIPs": [source_ip] if source_ip else [],
            "userAgent": user_agent, "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": received, "stageTimestamp": _now(),
            "user": user.to_json() if user else {},
        }
        if info is not None and info.is_resource_request:
            ref = {"resource": info.resource, "namespace": info.namespace, "name": info.name,
                   "apiGroup": info.api_group, "apiVersion": info.api_version,
                   "subresource": info.subresource}
            event["objectRef"] = {k: v for k, v in ref.items() if v}
        if annotations:
            event["annotations"] = annotations
        self.events.append(event)
        if self._file is not None:
            self._file.write(json.dumps(event, separators=(",", ":")) + "\n")
            self._file.flush()
        return event

    def close(self) -> None:
        if self._file is not None and self._file is not sys.stdout:
            self._file.close()
        self._file = None


now_rfc3339_micro = _now
