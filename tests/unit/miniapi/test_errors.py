"""errors.ApiError.status(): one Status shape for every failure, with the real reasons and messages
(what kubectl prints after ``Error from server (Reason):``)."""

from __future__ import annotations

from typing import Any

import pytest

from miniapi import errors
from miniapi.errors import ApiError


def cause(field: str, message: str) -> dict[str, str]:
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


CASES: list[tuple[ApiError, int, str, str, dict[str, Any] | None]] = [
    (errors.not_found("pods", "p1"), 404, "NotFound", 'pods "p1" not found', {"kind": "pods", "name": "p1"}),
    (errors.not_found("roles", "r", "rbac.authorization.k8s.io"), 404, "NotFound",
     'roles.rbac.authorization.k8s.io "r" not found',
     {"kind": "roles", "name": "r", "group": "rbac.authorization.k8s.io"}),
    (errors.already_exists("configmaps", "c"), 409, "AlreadyExists", 'configmaps "c" already exists',
     {"kind": "configmaps", "name": "c"}),
    (errors.conflict("pods", "p1", "the object has been modified"), 409, "Conflict",
     'Operation cannot be fulfilled on pods "p1": the object has been modified',
     {"kind": "pods", "name": "p1"}),
    (errors.bad_request("nope"), 400, "BadRequest", "nope", None),
    (errors.unauthorized(), 401, "Unauthorized", "Unauthorized", None),
    (errors.forbidden('nodes is forbidden: User "alice" cannot list resource "nodes"', "nodes"), 403,
     "Forbidden", 'nodes is forbidden: User "alice" cannot list resource "nodes"', {"kind": "nodes"}),
    (errors.forbidden("denied"), 403, "Forbidden", "denied", None),
    (errors.method_not_allowed(), 405, "MethodNotAllowed",
     "the server does not allow this method on the requested resource", None),
    (errors.gone("too old resource version: 1 (5)"), 410, "Expired", "too old resource version: 1 (5)", None),
    (errors.too_large("Request entity too large: limit is 3145728"), 413, "RequestEntityTooLarge",
     "Request entity too large: limit is 3145728", None),
    (errors.internal("boom"), 500, "InternalError", "Internal error occurred: boom", None),
    (errors.service_unavailable("later"), 503, "ServiceUnavailable", "later", None),
]


@pytest.mark.parametrize("err, code, reason, message, details", CASES,
                         ids=[f"{c[1]}-{c[2]}-{i}" for i, c in enumerate(CASES)])
def test_status_shape(err: ApiError, code: int, reason: str, message: str,
                      details: dict[str, Any] | None) -> None:
    status = err.status()
    expected = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": message, "reason": reason, "code": code}
    if details is not None:
        expected["details"] = details
    assert status == expected
    assert str(err) == f"{code} {reason}: {message}"


def test_unsupported_media_type_names_what_is_accepted() -> None:
    status = errors.unsupported_media_type("text/html").status()
    assert (status["code"], status["reason"]) == (415, "UnsupportedMediaType")
    assert "application/json" in status["message"] and "'text/html'" in status["message"]


def test_invalid_one_cause() -> None:
    status = errors.invalid("Pod", "p", [cause("spec.containers", "Required value")]).status()
    assert (status["code"], status["reason"]) == (422, "Invalid")
    assert status["message"] == 'Pod "p" is invalid: spec.containers: Required value'
    assert status["details"] == {"name": "p", "kind": "Pod", "causes": [cause("spec.containers",
                                                                              "Required value")]}


def test_invalid_many_causes_with_group() -> None:
    causes = [cause("spec.request", "bad PEM"), {"reason": "FieldValueRequired", "message": "x"}]
    status = errors.invalid("CertificateSigningRequest", "c", causes, "certificates.k8s.io").status()
    assert status["message"] == ('CertificateSigningRequest.certificates.k8s.io "c" is invalid: '
                                 "[spec.request: bad PEM, x]")
    assert status["details"]["group"] == "certificates.k8s.io"
    assert status["details"]["causes"] == causes


def test_status_is_a_fresh_dict_each_time() -> None:
    err = errors.not_found("pods", "p")
    first = err.status()
    first["metadata"]["x"] = 1
    first["message"] = "changed"
    assert err.status()["metadata"] == {} and err.status()["message"] == 'pods "p" not found'
