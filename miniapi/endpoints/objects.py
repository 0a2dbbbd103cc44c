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
    if number > _INT64_MAX:  # the Go side parses these query parameters as int64
        raise errors.bad_request(f'invalid value for {name}: "{value}" is out of range')
    if number < minimum:
        raise errors.bad_request(f"{name}: Invalid value: {number}: must be greater than or equal to "
                                 f"{minimum}")
    return number


_INT64_MAX = (1 << 63) - 1

# kinds whose spec / status is a Go struct: any other JSON type fails to decode
_SPEC_KINDS = ("Namespace", "Node", "Pod", "Service", "Lease", "CertificateSigningRequest")
_STATUS_KINDS = ("Namespace", "Node", "Pod", "Service", "CertificateSigningRequest")
_JSON_TYPES = {bool: "bool", str: "string", list: "array", dict: "object"}


def _mismatch(value: Any, where: str, go_type: str) -> str:
    found = _JSON_TYPES.get(type(value), "number")
    return f"json: cannot unmarshal {found} into Go struct field {where} of type {go_type}"


def _meta_decode_error(meta: Obj) -> str | None:
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            return _mismatch(meta[key], f"ObjectMeta.metadata.{key}", "string")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            return _mismatch(value, f"ObjectMeta.metadata.{key}", "map[string]string")
        for k, v in value.items():
            if v is None:
                value[k] = ""  # Go decodes null into a map[string]string as ""
            elif not isinstance(v, str):
                return _mismatch(v, f"ObjectMeta.metadata.{key}", "string")
    finalizers, owners = meta.get("finalizers"), meta.get("ownerReferences")
    if finalizers is not None and not (isinstance(finalizers, list)
                                       and all(isinstance(f, str) for f in finalizers)):
        return _mismatch(finalizers, "ObjectMeta.metadata.finalizers", "[]string")
    if owners is not None and not (isinstance(owners, list) and all(isinstance(o, dict) for o in owners)):
        return _mismatch(owners, "ObjectMeta.metadata.ownerReferences", "[]v1.OwnerReference")
    return None


def decode_error(kind: str, obj: Obj) -> str | None:
    """What Go's JSON decoder says about a well-known field of the wrong JSON type (None: decodes).

    The real apiserver decodes bodies into typed structs, so ``"labels": {"a": 1}`` or ``"spec": "x"``
    fail before any validation runs (400, or 422 for a patch result)."""
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return _mismatch(meta, f"{kind}.metadata", "v1.ObjectMeta")
    if meta and (why := _meta_decode_error(meta)):
        return why
    for key, kinds in (("spec", _SPEC_KINDS), ("status", _STATUS_KINDS)):
        if kind in kinds and obj.get(key) is not None and not isinstance(obj[key], dict):
            return _mismatch(obj[key], f"{kind}.{key}", f"v1.{kind}{key.title()}")
    return None


def delete_options_error(options: Obj) -> str | None:
    """Type errors in a DeleteOptions body (as decode_error, for the fields a client may send)."""
    typed = {"gracePeriodSeconds": (int, "int64"), "propagationPolicy": (str, "v1.DeletionPropagation"),
             "orphanDependents": (bool, "bool"), "preconditions": (dict, "v1.Preconditions")}
    for key, (want, go_type) in typed.items():
        value = options.get(key)
        if value is not None and (not isinstance(value, want) or (want is int and isinstance(value, bool))):
            return _mismatch(value, f"DeleteOptions.{key}", go_type)
    dry = options.get("dryRun")
    if dry is not None and not (isinstance(dry, list) and all(isinstance(d, str) for d in dry)):
        return _mismatch(dry, "DeleteOptions.dryRun", "[]string")
    for key, value in (options.get("preconditions") or {}).items():
        if value is not None and not isinstance(value, str):
            return _mismatch(value, f"Preconditions.preconditions.{key}", "string")
    return None


def dry_run(values: list[str], options_kind: str) -> bool:
    """``dryRun`` may only be ``All`` (ValidateDryRun): a typo must not turn into a real write."""
    bad = [v for v in values if v != "All"]
    if bad:
        shown = ", ".join(f'"{v}"' for v in values)
        raise errors.invalid(options_kind, "", [{
            "reason": "FieldValueNotSupported", "field": "dryRun",
            "message": f'Unsupported value: []string{{{shown}}}: supported values: "All"'}], "meta.k8s.io")
    return bool(values)


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
