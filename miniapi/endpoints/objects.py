"""Helpers shared by the REST handlers: object identity, list filtering, store-error mapping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from miniapi import errors
from miniapi.resources import ResourceType
from miniapi.store import AlreadyExists, Conflict, Expired, NotFound
from miniapi.wire import fieldselectors, selectors

Obj = dict[str, Any]


@contextmanager
def store_errors(rt: ResourceType, name: str = "") -> Iterator[None]:
    """Map the store's exceptions to the real Status errors for this resource."""
    try:
        yield
    except NotFound as exc:
        raise errors.not_found(rt.resource, exc.name or name, rt.group) from None
    except AlreadyExists as exc:
        raise errors.already_exists(rt.resource, exc.name or name, rt.group) from None
    except Conflict as exc:
        raise errors.conflict(rt.resource, exc.name or name, "the object has been modified; please apply "
                              "your changes to the latest version and try again", rt.group) from None
    except Expired as exc:
        raise errors.gone(f"too old resource version: {exc.requested} ({exc.oldest})") from None


def with_type(rt: ResourceType, obj: Obj) -> Obj:
    obj["apiVersion"] = rt.api_version
    obj["kind"] = rt.kind
    return obj


class Filter:
    """labelSelector / fieldSelector of a list or watch request."""

    def __init__(self, rt: ResourceType, query: Any) -> None:
        try:
            self.labels = selectors.parse_label_selector(query.get("labelSelector", ""))
            self.fields = fieldselectors.parse_field_selector(query.get("fieldSelector", ""), rt.kind)
        except (selectors.SelectorError, fieldselectors.SelectorError) as exc:
            raise errors.bad_request(str(exc)) from None

    def __call__(self, obj: Obj) -> bool:
        return self.labels.matches(obj.get("metadata", {}).get("labels") or {}) and self.fields.matches(obj)


def encode_continue(rv: int, after: str) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": after}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        return int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError):
        raise errors.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                 "(version meta.k8s.io/v1)") from None


def parse_int(query: Any, name: str, default: int | None = None, minimum: int = 0) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise errors.bad_request(f'invalid value for {name}: "{value}" is not an integer') from None
    if number < minimum:
        raise errors.bad_request(f"{name}: Invalid value: {number}: must be greater than or equal to "
                                 f"{minimum}")
    return number


def parse_rv(value: str | None) -> int | None:
    if value in (None, ""):
        return None
    try:
        rv = int(value)
    except ValueError:
        raise errors.bad_request(f'resourceVersion: Invalid value: "{value}": must be an integer') from None
    if rv < 0:
        raise errors.bad_request(f'resourceVersion: Invalid value: "{value}": must be non-negative')
    return rv


def sort_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"
