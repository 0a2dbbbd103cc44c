"""Assertions on what the apiserver decided AND why, read from the audit event of the request.

Each takes a :class:`~miniapi.testing.identity.Response` (or an audit event, for requests made by
kubectl or the official client) and checks, in order:

1. the HTTP answer: ``assert_unauthenticated`` wants 401 ``Unauthorized``, ``assert_forbidden`` 403
   ``Forbidden``, ``assert_allowed`` anything but 401/403/5xx (a 404 was still allowed);
2. the audit event: the ``authorization.k8s.io/decision`` annotation (``allow`` / ``forbid``), or for a
   401 that no authorizer was asked;
3. ``reason``, if given: a substring of (or ``re.Pattern`` searched in) the reason the apiserver
   logged: ``authorization.k8s.io/reason`` for allow/forbid, ``authentication.k8s.io/error`` for 401;
4. ``user`` / ``authenticator``, if given: who the apiserver thought it was, and which source said so.

They return the event, and fail with the answer, the event and your ``hint`` spelled out.
"""

from __future__ import annotations

import re

from miniapi.testing.audit import AUTHENTICATOR, AUTHN_ERROR, DECISION, REASON, Event, annotations_of, describe
from miniapi.testing.identity import Response

Reason = str | re.Pattern[str] | None


def _event_of(result: Response | Event) -> tuple[Event, str]:
    """(event, what) where ``what`` names the request for messages."""
    if isinstance(result, Response):
        return result.audit_event(), f"{result.method} {result.path} as {result.identity}"
    return result, f"{result.get('verb')} {result.get('requestURI')}"


def _answer(result: Response | Event, event: Event) -> tuple[int, str]:
    if isinstance(result, Response):
        head = f"{result.status} {result.status_reason}".strip()
        return result.status, f"{head}: {result.message}"
    code = int(event.get("responseStatus", {}).get("code", 0))
    return code, str(code)


def _matches(actual: str, want: Reason) -> bool:
    if want is None:
        return True
    if isinstance(want, re.Pattern):
        return want.search(actual) is not None
    return want in actual


def _fail(expected: str, what: str, answer: str, event: Event, problem: str, hint: str) -> None:
    __tracebackhide__ = True
    text = f"expected {what} to be {expected}, but {problem}\n  answer: {answer}\n{describe(event)}"
    if hint:
        text += f"\nhint: {hint}"
    raise AssertionError(text)


def _check_who(expected: str, what: str, answer: str, event: Event, user: str | None,
               authenticator: str | None, hint: str) -> None:
    __tracebackhide__ = True
    seen_user = str((event.get("user") or {}).get("username", ""))
    if user is not None and seen_user != user:
        _fail(expected, what, answer, event, f"the apiserver saw user {seen_user!r}, not {user!r}", hint)
    seen_by = annotations_of(event).get(AUTHENTICATOR, "")
    if authenticator is not None and seen_by != authenticator:
        _fail(expected, what, answer, event,
              f"it was authenticated by {seen_by or 'nobody'!r}, not {authenticator!r}", hint)


def assert_allowed(result: Response | Event, reason: Reason = None, *, user: str | None = None,
                   authenticator: str | None = None, hint: str = "") -> Event:
    """Authenticated and authorized (rules 1-4); returns the audit event."""
    __tracebackhide__ = True
    event, what = _event_of(result)
    code, answer = _answer(result, event)
    notes = annotations_of(event)
    if code in (401, 403) or code >= 500:
        _fail("ALLOWED", what, answer, event, f"the apiserver answered {code}", hint)
    if notes.get(DECISION) != "allow":
        _fail("ALLOWED", what, answer, event, f"the logged decision is {notes.get(DECISION)!r}", hint)
    if not _matches(notes.get(REASON, ""), reason):
        _fail("ALLOWED", what, answer, event, f"the logged reason does not match {reason!r}", hint)
    _check_who("ALLOWED", what, answer, event, user, authenticator, hint)
    return event


def assert_forbidden(result: Response | Event, reason: Reason = None, *, user: str | None = None,
                     authenticator: str | None = None, hint: str = "") -> Event:
    """Authenticated, then denied by authorization: 403 Forbidden (rules 1-4); returns the event."""
    __tracebackhide__ = True
    event, what = _event_of(result)
    code, answer = _answer(result, event)
    notes = annotations_of(event)
    if code != 403:
        _fail("FORBIDDEN (403)", what, answer, event, f"the apiserver answered {code}", hint)
    if isinstance(result, Response) and result.status_reason != "Forbidden":
        _fail("FORBIDDEN (403)", what, answer, event, "the body is not a Status with reason Forbidden", hint)
    if notes.get(DECISION) != "forbid":
        _fail("FORBIDDEN (403)", what, answer, event, f"the logged decision is {notes.get(DECISION)!r}", hint)
    if not _matches(notes.get(REASON, ""), reason):
        _fail("FORBIDDEN (403)", what, answer, event, f"the logged reason does not match {reason!r}", hint)
    _check_who("FORBIDDEN (403)", what, answer, event, user, authenticator, hint)
    return event


def assert_unauthenticated(result: Response | Event, reason: Reason = None, *, hint: str = "") -> Event:
    """Refused by authentication: 401 Unauthorized, no authorizer asked (rules 1-3); returns the event."""
    __tracebackhide__ = True
    event, what = _event_of(result)
    code, answer = _answer(result, event)
    notes = annotations_of(event)
    if code != 401:
        _fail("UNAUTHENTICATED (401)", what, answer, event, f"the apiserver answered {code}", hint)
    if isinstance(result, Response) and result.status_reason != "Unauthorized":
        _fail("UNAUTHENTICATED (401)", what, answer, event, "the body is not a Status with reason "
              "Unauthorized", hint)
    if DECISION in notes:
        _fail("UNAUTHENTICATED (401)", what, answer, event, "an authorizer was asked", hint)
    if not _matches(notes.get(AUTHN_ERROR, ""), reason):
        _fail("UNAUTHENTICATED (401)", what, answer, event,
              f"the logged authentication error does not match {reason!r}", hint)
    return event


def audit_event(result: Response) -> Event:
    """The audit event of a request made through an :class:`~miniapi.testing.identity.Identity`."""
    return result.audit_event()

