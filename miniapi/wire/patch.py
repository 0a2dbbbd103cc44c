"""PATCH bodies: the four content types kubectl sends, applied to a JSON-form object.

The REST layer's PATCH handler calls :func:`apply_patch` with the stored object and the raw
body; a :class:`PatchError` carries the HTTP code for the Status (400 bad body, 415 unknown
content type, 422 a JSON patch that does not apply), as k8s.io/apiserver
``pkg/endpoints/handlers/patch.go`` does.

=====================================  ==================================  ======================
Content-Type                           sent by                              semantics
=====================================  ==================================  ======================
application/json-patch+json            ``kubectl patch --type=json``        RFC 6902 operations
application/merge-patch+json           ``kubectl label|annotate``,          RFC 7386
                                       ``patch --type=merge``
application/strategic-merge-patch+json ``kubectl apply`` (client-side),     ``patch_strategic``
                                       ``cordon``, ``patch`` (default)
application/apply-patch+yaml           ``kubectl apply --server-side``      simplified, see below
=====================================  ==================================  ======================

Server-side apply is simplified: the real apiserver tracks field ownership per manager
(``managedFields``) and can remove fields a manager stopped applying, or answer 409 Conflict.
Here the body (JSON, or YAML when PyYAML is installed) is the desired object and is merged onto
the live object like a strategic merge patch: fields are added and changed, never removed, and
there are no conflicts.

JSON patch example (``kubectl patch pod p1 --type=json -p ...``)::

    [{"op":"replace","path":"/spec/containers/0/image","value":"busybox"}]
"""

from __future__ import annotations

import copy
import datetime
import json
from typing import Any

from miniapi.wire.patch_strategic import PatchError, json_equal, strategic_merge_patch

__all__ = ["PatchError", "apply_patch", "json_merge_patch", "json_patch", "strategic_merge_patch",
           "JSON_PATCH", "MERGE_PATCH", "STRATEGIC_MERGE_PATCH", "APPLY_PATCH"]

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
_SUPPORTED = (JSON_PATCH, MERGE_PATCH, APPLY_PATCH, STRATEGIC_MERGE_PATCH)


def apply_patch(original: dict[str, Any], body: bytes, content_type: str, kind: str) -> dict[str, Any]:
    """Apply a PATCH body of ``content_type`` to ``original`` (not modified); return the new object."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in _SUPPORTED:
        raise PatchError(f"the body of the request was in an unknown format - accepted media types "
                         f"include: {', '.join(_SUPPORTED)}", code=415)
    if media == APPLY_PATCH:
        desired = _load_apply_body(body)
        return strategic_merge_patch(original, desired, kind)
    document = _load_json(body)
    if media == JSON_PATCH:
        if not isinstance(document, list):
            raise PatchError("json patch must be a list of operations")
        return _as_object(json_patch(original, document))
    if media == MERGE_PATCH:
        return _as_object(json_merge_patch(original, document))
    if not isinstance(document, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    return strategic_merge_patch(original, document, kind)


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise PatchError(f"error decoding patch: {exc}") from None


def _load_apply_body(body: bytes) -> dict[str, Any]:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a test dependency
        document = _load_json(body)
    else:
        try:
            document = yaml.safe_load(body)
        except (yaml.YAMLError, ValueError, RecursionError) as exc:
            raise PatchError(f"error decoding YAML: {exc}") from None
    if not isinstance(document, dict):
        raise PatchError("apply patch must be a YAML or JSON object")
    jsonable: dict[str, Any] = _jsonable(document)
    return jsonable


def _jsonable(value: Any) -> Any:
    """YAML -> JSON as sigs.k8s.io/yaml does: keys become strings, timestamps RFC 3339 strings."""
    if isinstance(value, dict):
        return {_yaml_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime.date):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float)):
        return value
    raise PatchError(f"apply patch: YAML value of type {type(value).__name__} has no JSON form")


def _yaml_key(key: Any) -> str:
    if isinstance(key, bool) or key is None:
        return json.dumps(key)
    if isinstance(key, (str, int, float)):
        return str(key)
    raise PatchError(f"apply patch: YAML key of type {type(key).__name__} has no JSON form")


def _as_object(result: Any) -> dict[str, Any]:
    if not isinstance(result, dict):
        raise PatchError("the patched document is not a JSON object", code=422)
    return result


# --- RFC 7386 JSON merge patch -------------------------------------------------------------------


def json_merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


# --- RFC 6902 JSON patch -------------------------------------------------------------------------


def json_patch(original: Any, operations: list[Any]) -> Any:
    """RFC 6902 add/remove/replace/move/copy/test, applied in order to a copy of ``original``."""
    doc = copy.deepcopy(original)
    for number, op in enumerate(operations):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise PatchError(f"json patch operation {number} has no \"op\"")
        doc = _apply_op(doc, op)
    return doc


def _require(op: dict[str, Any], name: str) -> Any:
    if name not in op:
        raise PatchError(f"json patch {op['op']} operation is missing \"{name}\"")
    return op[name]


def _apply_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op["op"]
    path = _pointer(_require(op, "path"))
    if kind == "add":
        return _add(doc, path, copy.deepcopy(_require(op, "value")))
    if kind == "remove":
        return _remove(doc, path)[0]
    if kind == "replace":
        return _replace(doc, path, copy.deepcopy(_require(op, "value")))
    if kind in ("move", "copy"):
        source = _pointer(_require(op, "from"))
        if kind == "move" and path[:len(source)] == source and path != source:
            raise PatchError(f"json patch move: cannot move {op['from']} into its own child {op['path']}")
        value = copy.deepcopy(_get(doc, source, kind))
        if kind == "move":
            doc, _ = _remove(doc, source, verb="move")
        return _add(doc, path, value)
    if kind == "test":
        if not json_equal(_get(doc, path, "test"), _require(op, "value")):
            raise PatchError(f"testing value {op['path']} failed", code=422)
        return doc
    raise PatchError(f"unexpected json patch operation \"{kind}\"")


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or (text and not text.startswith("/")):
        raise PatchError(f"json patch path {text!r} is not a JSON pointer")
    return [part.replace("~1", "/").replace("~0", "~") for part in text.split("/")[1:]]


def _index(container: list[Any], token: str, *, append_ok: bool) -> int:
    if append_ok and token == "-":
        return len(container)
    if not token.isdigit() or not token.isascii() or (token != "0" and token.startswith("0")):
        raise PatchError(f"json patch: {token!r} is not an array index", code=422)
    index = int(token)
    if index > len(container) - (0 if append_ok else 1):
        raise PatchError(f"json patch: array index {index} out of bounds", code=422)
    return index


def _parent(doc: Any, path: list[str], verb: str) -> Any:
    node = doc
    for token in path[:-1]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, append_ok=False)]
        else:
            raise PatchError(f"{verb} operation does not apply: doc is missing path: /{'/'.join(path)}",
                             code=422)
    return node


def _get(doc: Any, path: list[str], verb: str) -> Any:
    if not path:
        return doc
    parent, last = _parent(doc, path, verb), path[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, append_ok=False)]
    raise PatchError(f"{verb} operation does not apply: doc is missing path: /{'/'.join(path)}", code=422)


def _add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _parent(doc, path, "add"), path[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, append_ok=True), value)
    else:
        raise PatchError(f"add operation does not apply: /{'/'.join(path)} is not in a container", code=422)
    return doc


def _replace(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent, last = _parent(doc, path, "replace"), path[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(parent, last, append_ok=False)] = value
    else:
        raise PatchError(f"replace operation does not apply: doc is missing key: /{'/'.join(path)}", code=422)
    return doc


def _remove(doc: Any, path: list[str], verb: str = "remove") -> tuple[Any, Any]:
    if not path:
        return None, doc
    parent, last = _parent(doc, path, verb), path[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, append_ok=False))
    raise PatchError(f"{verb} operation does not apply: doc is missing key: /{'/'.join(path)}", code=422)
