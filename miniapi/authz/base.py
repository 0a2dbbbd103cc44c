"""Authorization vocabulary (k8s.io/apiserver/pkg/authorization/authorizer).

Authorizers answer ALLOW, DENY or NO_OPINION with a reason. RBAC and Node only ever say ALLOW or
NO_OPINION; the union stops at the first ALLOW or DENY, and the filter denies unless someone allowed.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from miniapi.user import UserInfo


class Revision:
    """A counter a stateful authorizer bumps whenever an answer it gave may have changed (its index
    changed). An authorizer whose answers depend on nothing but the Attributes has none; one that
    depends on anything else without a Revision makes the union decide every request anew."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def bump(self) -> None:
        self.value += 1


class Decision(enum.Enum):
    DENY = 0
    ALLOW = 1
    NO_OPINION = 2


@dataclass(frozen=True)
class Attributes:
    user: UserInfo
    verb: str
    is_resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = "v1"
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True)
class ResourceRule:
    verbs: tuple[str, ...]
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()


@dataclass(frozen=True)
class NonResourceRule:
    verbs: tuple[str, ...]
    non_resource_urls: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulesResult:
    """What SelfSubjectRulesReview reports."""

    resource_rules: tuple[ResourceRule, ...] = ()
    non_resource_rules: tuple[NonResourceRule, ...] = ()
    incomplete: bool = False
    evaluation_error: str = ""
    extra: dict[str, str] = field(default_factory=dict)


class Authorizer(Protocol):
    name: str

    async def authorize(self, attrs: Attributes) -> tuple[Decision, str]: ...


class RuleResolver(Protocol):
    async def rules_for(self, user: UserInfo, namespace: str) -> RulesResult: ...
