"""The ApiError family: every failure that reaches a client becomes one Kubernetes ``Status``.

Rendered in one place (:meth:`ApiError.status`), so kubectl prints our errors exactly as it prints a
real cluster's, e.g. ``Error from server (Forbidden): pods is forbidden: User "alice" ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ApiError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.code} {self.reason}: {self.message}"

    def status(self) -> dict[str, Any]:
        """metav1.Status in its Go field order: ... message, reason, details, code."""
        out: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
        }
        if self.details:
            out["details"] = self.details
        out["code"] = self.code
        return out


def _details(resource: str, name: str, group: str = "") -> dict[str, Any]:
    """metav1.StatusDetails, Go field order (name, group, kind), empty ones omitted."""
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    d["kind"] = resource
    return d


def _qualified(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(404, "NotFound", f'{_qualified(resource, group)} "{name}" not found',
                    _details(resource, name, group))


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    return ApiError(409, "AlreadyExists", f'{_qualified(resource, group)} "{name}" already exists',
                    _details(resource, name, group))


def conflict(resource: str, name: str, why: str, group: str = "") -> ApiError:
    msg = (f'Operation cannot be fulfilled on {_qualified(resource, group)} "{name}": {why}')
    return ApiError(409, "Conflict", msg, _details(resource, name, group))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized(message: str = "Unauthorized") -> ApiError:
    return ApiError(401, "Unauthorized", message)


def forbidden(message: str, resource: str = "", name: str = "", group: str = "") -> ApiError:
    return ApiError(403, "Forbidden", message, _details(resource, name, group) if resource else {})


def method_not_allowed(message: str = "the server does not allow this method on the requested resource"
                       ) -> ApiError:
    return ApiError(405, "MethodNotAllowed", message)


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                    f"accepted media types include: application/json, application/yaml, "
                    f"application/vnd.kubernetes.protobuf (got {content_type!r})")


def invalid(kind: str, name: str, causes: list[dict[str, str]], group: str = "") -> ApiError:
    """422 Invalid with field causes: ``Pod "p" is invalid: spec.containers: Required value``."""
    summary = "; ".join(f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes)
    if len(causes) > 1:
        summary = "[" + ", ".join(
            f"{c['field']}: {c['message']}" if c.get("field") else c["message"] for c in causes) + "]"
    return ApiError(422, "Invalid", f'{kind}.{group} "{name}" is invalid: {summary}' if group
                    else f'{kind} "{name}" is invalid: {summary}',
                    {"name": name, "group": group, "kind": kind, "causes": causes} if group
                    else {"name": name, "kind": kind, "causes": causes})


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str) -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def internal(message: str) -> ApiError:
    return ApiError(500, "InternalError", f'Internal error occurred: {message}')


def service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)
