"""What an admission plugin sees (admission.Attributes) and how its refusal reads (admission.NewForbidden).

A refusal is ``403 Forbidden`` with the message ``RESOURCE "NAME" is forbidden: WHY``; on a create the
name comes from the object (``metadata.name``, else ``generateName``, else ``Unknown``), e.g.::

    nodes "node2" is forbidden: node "node1" is not allowed to modify node "node2"
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from miniapi import errors
from miniapi.user import UserInfo


class Operation(Enum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(frozen=True)
class Attributes:
    """Who, which operation on which (sub)resource, the new object and the stored one."""

    user: UserInfo
    operation: Operation
    group: str
    resource: str
    subresource: str
    namespace: str
    name: str
    obj: dict[str, Any] | None = None
    old: dict[str, Any] | None = None

    def object_name(self) -> str:
        if self.name:
            return self.name
        meta = (self.obj or {}).get("metadata") or {}
        return str(meta.get("name") or meta.get("generateName") or "Unknown")


def forbidden(attrs: Attributes, why: str) -> errors.ApiError:
    """admission.NewForbidden: the qualified resource, the name, and the plugin's reason."""
    qualified = f"{attrs.resource}.{attrs.group}" if attrs.group else attrs.resource
    name = attrs.object_name()
    return errors.forbidden(f'{qualified} "{name}" is forbidden: {why}', attrs.resource, name, attrs.group)
