"""The audit ring's deferred Events: the same content as one built at once, built once, and written to
the file at once."""

from __future__ import annotations

import json
import time
from pathlib import Path

from miniapi.audit import AuditLog, Pending, rfc3339_micro
from miniapi.authz.base import Decision
from miniapi.requestinfo import parse
from miniapi.user import UserInfo

USER = UserInfo("alice", "u-1", ("devs", "system:authenticated"), {"k": ("v",)})


def pending(code: int = 200) -> Pending:
    info = parse("GET", "/api/v1/namespaces/default/configmaps/cm")
    return Pending(info, "/api/v1/namespaces/default/configmaps/cm?x=1", USER, "127.0.0.1", "kubectl/v1.37",
                   code, 1_800_000_000.25, 1_800_000_000.5, (Decision.ALLOW, "RBAC: allowed by x"), None,
                   "token-file")


def test_a_deferred_event_matches_the_eager_one() -> None:
    log = AuditLog()
    log.add(pending())
    eager = log.record(info=parse("GET", "/api/v1/namespaces/default/configmaps/cm"),
                       uri="/api/v1/namespaces/default/configmaps/cm?x=1", user=USER, source_ip="127.0.0.1",
                       user_agent="kubectl/v1.37", code=200, received=rfc3339_micro(1_800_000_000.25),
                       annotations={"authorization.k8s.io/decision": "allow",
                                    "authorization.k8s.io/reason": "RBAC: allowed by x",
                                    "authentication.k8s.io/authenticator": "token-file"})
    deferred, again = log.events
    assert deferred["auditID"] != eager["auditID"]
    strip = ("auditID", "stageTimestamp")
    assert {k: v for k, v in deferred.items() if k not in strip} == {k: v for k, v in eager.items()
                                                                      if k not in strip}
    assert list(deferred) == list(eager)  # the same key order, so the same JSON text
    assert deferred["requestReceivedTimestamp"] == "2027-01-15T08:00:00.250000Z"
    assert deferred["stageTimestamp"] == "2027-01-15T08:00:00.500000Z"
    assert deferred["objectRef"] == {"resource": "configmaps", "namespace": "default", "name": "cm",
                                     "apiVersion": "v1"}
    assert again is eager


def test_a_deferred_event_is_built_once() -> None:
    log = AuditLog()
    log.add(pending(403))
    first, second = list(log.events), list(log.events)
    assert first[0] is second[0] and first[0]["auditID"] == second[0]["auditID"]
    assert first[0]["responseStatus"]["code"] == 403


def test_the_ring_keeps_the_newest(tmp_path: Path) -> None:
    log = AuditLog(keep=3)
    for code in range(200, 205):
        log.add(pending(code))
    assert [e["responseStatus"]["code"] for e in log.events] == [202, 203, 204]


def test_with_a_file_each_event_is_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path))
    log.add(pending())
    on_disk = [json.loads(line) for line in path.read_text().splitlines()]
    assert on_disk == list(log.events)
    log.close()


def test_timestamps_format_like_go() -> None:
    now = time.time()
    assert rfc3339_micro(now)[:19] == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(int(now)))
    assert rfc3339_micro(0.000001).endswith(".000001Z")
