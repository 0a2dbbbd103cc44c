"""Strategic merge patch, ported from k8s.io/apimachinery ``pkg/util/strategicpatch/patch.go``.

What ``kubectl apply`` (client-side), ``cordon`` and ``kubectl patch`` send. Server-side rules
(``MergeParallelList`` and ``IgnoreUnmatchedNulls`` on), in the order ``mergeMap`` applies them:

1. ``{"$patch": "replace"}`` in a map replaces the whole map; ``"delete"`` empties it.
2. ``$retainKeys: [...]`` drops every original key not listed.
3. ``$setElementOrder/<list>: [...]`` merges ``<list>`` and then orders it: the order hint first,
   then items only the server had, at their old relative place. The directive is dropped.
4. ``$deleteFromPrimitiveList/<list>: [...]`` removes those values from a primitive list.
5. ``key: null`` deletes ``key``. A key the original lacks takes the patch value, with nulls and
   directives removed. Maps merge recursively.
6. Lists merge only when the Go field says ``patchStrategy=merge`` (see ``MERGE_KEYS``):
   primitive lists become a de-duplicated union; lists of maps merge element by element on the
   ``patchMergeKey``, where an element ``{"$patch": "delete", <key>: v}`` removes ``v`` and an
   element ``{"$patch": "replace"}`` replaces the whole list. Every other list is replaced.

The merge keys come from the ``+patchMergeKey`` / ``+patchStrategy`` tags in k8s.io/api
``types.go``. Kinds not in the table (custom resources) only get the ObjectMeta ones.

Example: live Pod ``containers: [{name: c, image: nginx, env: [{name: B}]}]`` and patch::

    {"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "s"}],
              "containers": [{"name": "c", "env": [{"$patch": "delete", "name": "B"}]},
                             {"name": "s", "image": "busybox"}]}}

give ``containers: [{name: c, image: nginx, env: []}, {name: s, image: busybox}]``.
"""

from __future__ import annotations

import copy
from typing import Any

Path = tuple[str, ...]
DIRECTIVE, RETAIN_KEYS = "$patch", "$retainKeys"
SET_ORDER, DELETE_FROM = "$setElementOrder/", "$deleteFromPrimitiveList/"


class PatchError(ValueError):
    """A patch that cannot be applied; ``code`` is the HTTP status for the Status reply."""

    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --- merge keys: path of field names (list items are transparent) -> patchMergeKey ("" = primitive)

_POD_SPEC: dict[Path, str] = {
    ("containers",): "name", ("initContainers",): "name", ("ephemeralContainers",): "name",
    ("volumes",): "name", ("imagePullSecrets",): "name", ("hostAliases",): "ip",
    ("schedulingGates",): "name", ("resourceClaims",): "name",
    ("topologySpreadConstraints",): "topologyKey",
}
for _c in ("containers", "initContainers", "ephemeralContainers"):
    _POD_SPEC |= {(_c, "ports"): "containerPort", (_c, "env"): "name",
                  (_c, "volumeMounts"): "mountPath", (_c, "volumeDevices"): "devicePath"}
_CONDITIONS: dict[Path, str] = {("status", "conditions"): "type"}


def _under(prefix: Path, table: dict[Path, str]) -> dict[Path, str]:
    return {prefix + path: key for path, key in table.items()}


_TEMPLATE = _under(("spec", "template", "spec"), _POD_SPEC) | _CONDITIONS
MERGE_KEYS: dict[str, dict[Path, str]] = {
    "Pod": _under(("spec",), _POD_SPEC) | _CONDITIONS
    | {("status", "podIPs"): "ip", ("status", "hostIPs"): "ip"},
    "Node": {("spec", "podCIDRs"): "", ("status", "conditions"): "type", ("status", "addresses"): "type"},
    "Service": {("spec", "ports"): "port"} | _CONDITIONS,
    "Namespace": dict(_CONDITIONS),
    "ServiceAccount": {("secrets",): "name"},
    "Deployment": dict(_TEMPLATE), "ReplicaSet": dict(_TEMPLATE), "DaemonSet": dict(_TEMPLATE),
    "StatefulSet": dict(_TEMPLATE), "Job": dict(_TEMPLATE), "ReplicationController": dict(_TEMPLATE),
    "CronJob": _under(("spec", "jobTemplate", "spec", "template", "spec"), _POD_SPEC),
}
_METADATA: dict[Path, str] = {("metadata", "ownerReferences"): "uid", ("metadata", "finalizers"): ""}


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: unlike Python ``==``, ``true`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and isinstance(a, (int, float)) == isinstance(b, (int, float))


def strategic_merge_patch(original: dict[str, Any], patch: dict[str, Any], kind: str) -> dict[str, Any]:
    """Apply a strategic merge ``patch`` to ``original`` for objects of ``kind``; inputs are untouched."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    merger = _Merger(_METADATA | MERGE_KEYS.get(kind, {}))
    try:
        return merger.merge_map(copy.deepcopy(original), copy.deepcopy(patch), ())
    except RecursionError:
        raise PatchError("patch is nested too deeply") from None


class _Merger:
    def __init__(self, keys: dict[Path, str]) -> None:
        self.keys = keys

    def merge_map(self, original: Any, patch: dict[str, Any], path: Path) -> dict[str, Any]:
        if DIRECTIVE in patch:
            directive = patch.pop(DIRECTIVE)
            if directive == "replace":
                replaced: dict[str, Any] = _without_directives(patch)
                return replaced
            if directive == "delete":
                return {}
            raise PatchError(f"unknown patch type: {directive} in map: {patch}")
        merged: dict[str, Any] = original if isinstance(original, dict) else {}
        if RETAIN_KEYS in patch:
            _retain_keys(merged, patch)
        for key in [k for k in patch if k.startswith(SET_ORDER)]:
            self._set_element_order(merged, patch, key, path)
        for key, value in patch.items():
            self._merge_key(merged, key, value, path)
        return merged

    def _merge_key(self, original: dict[str, Any], key: str, value: Any, path: Path) -> None:
        delete_list = key.startswith(DELETE_FROM)
        if delete_list:
            key = key[len(DELETE_FROM):]
        if value is None:
            original.pop(key, None)
            return
        current = original.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            original[key] = self.merge_map(current, value, path + (key,))
        elif isinstance(current, list) and isinstance(value, list):
            original[key] = self.merge_list(current, value, path + (key,), delete_list=delete_list)
        elif not delete_list:
            cleaned = _without_directives(_without_nulls(value))
            if cleaned is _DROP:
                original.pop(key, None)
            else:
                original[key] = cleaned

    def merge_list(self, original: list[Any], patch: list[Any], path: Path, *, delete_list: bool = False
                   ) -> list[Any]:
        if path not in self.keys:
            return patch  # no patchStrategy=merge: the patch list replaces the live one
        key = self.keys[path]
        if not original and not patch:
            return original
        if _element_kind(original + patch) is not dict:
            if delete_list:
                return [v for v in original if not any(json_equal(v, p) for p in patch)]
            merged = _dedupe(original + patch)
        else:
            if not key:
                raise PatchError(f"cannot merge lists without merge key for {'.'.join(path)}")
            base, items = _special_elements(original, patch, key)
            merged = self._merge_by_key(base, items, key, path)
        in_patch, server_only = _partition(merged, patch, key)
        return _normalize_order(in_patch, server_only, patch, original, key)

    def _merge_by_key(self, original: list[Any], patch: list[dict[str, Any]], key: str, path: Path
                      ) -> list[Any]:
        merged = list(original)
        for item in patch:
            if key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {key}")
            at = _find(merged, key, item[key])
            if at >= 0:
                merged[at] = self.merge_map(merged[at], item, path)
            else:
                merged.append(_without_directives(_without_nulls(item)))
        return merged

    def _set_element_order(self, original: dict[str, Any], patch: dict[str, Any], directive: str,
                           path: Path) -> None:
        order, field = patch.pop(directive), directive[len(SET_ORDER):]
        if not isinstance(order, list):
            raise PatchError(f"{directive} must be a list")
        live, wanted = original.get(field), patch.pop(field, None)
        if not isinstance(live, list | None) or not isinstance(wanted, list | None):
            raise PatchError(f"{field} and {directive} must both be lists")
        key = self.keys.get(path + (field,), "")
        if wanted is not None:
            _check_order(wanted, order, key, directive)
        if live is None and wanted is None:
            return
        if live is not None and wanted is not None:
            merged = self.merge_list(live, wanted, path + (field,))
        else:
            merged = live if live is not None else _without_directives(wanted)
        in_order, server_only = _partition(merged, order, key)
        original[field] = _normalize_order(in_order, server_only, order, live or [], key)


_DROP = object()


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _without_directives(value: Any) -> Any:
    """removeDirectives: maps carrying ``$patch`` vanish, other ``$`` directive keys are dropped."""
    if isinstance(value, dict):
        if DIRECTIVE in value:
            return _DROP
        out = {k: _without_directives(v) for k, v in value.items()
               if not (k == RETAIN_KEYS or k.startswith((SET_ORDER, DELETE_FROM)))}
        return {k: v for k, v in out.items() if v is not _DROP}
    if isinstance(value, list):
        return [v for v in (_without_directives(item) for item in value) if v is not _DROP]
    return value


def _retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    keep = patch.pop(RETAIN_KEYS)
    if keep is None:
        return
    if not isinstance(keep, list):
        raise PatchError("invalid patch: $retainKeys must be a list")
    for key in patch:
        if not key.startswith("$") and key not in keep:
            raise PatchError("invalid patch: the keys in the patch are not a subset of $retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _element_kind(items: list[Any]) -> type:
    kinds = {dict if isinstance(v, dict) else list if isinstance(v, list) else object for v in items}
    if len(kinds) != 1 or list in kinds:
        raise PatchError("strategic merge patch: list elements must all be objects or all be scalars")
    return kinds.pop()


def _special_elements(original: list[Any], patch: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    """Apply ``$patch: delete|replace`` elements; return the base list and the ordinary elements."""
    plain, replace = [], False
    for item in patch:
        directive = item.get(DIRECTIVE)
        if directive is None:
            plain.append(item)
        elif directive == "delete":
            if key not in item:
                raise PatchError(f"map: {item} does not contain declared merge key: {key}")
            at = _find(original, key, item[key])
            while at >= 0:
                original = original[:at] + original[at + 1:]
                at = _find(original, key, item[key])
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch")
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {item}")
    return ([], plain) if replace else (original, plain)


def _find(items: list[Any], key: str, value: Any) -> int:
    for i, item in enumerate(items):
        if isinstance(item, dict) and key in item and json_equal(item[key], value):
            return i
    return -1


def _position(order: list[Any], item: Any, key: str) -> int:
    if key:
        return _find(order, key, item.get(key)) if isinstance(item, dict) and key in item else -1
    return next((i for i, v in enumerate(order) if json_equal(v, item)), -1)


def _dedupe(items: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _partition(merged: list[Any], present: list[Any], key: str) -> tuple[list[Any], list[Any]]:
    inside = [v for v in merged if _position(present, v, key) >= 0]
    return inside, [v for v in merged if _position(present, v, key) < 0]


def _check_order(patch_list: list[Any], order: list[Any], key: str, directive: str) -> None:
    """validatePatchWithSetOrderList: the patch items must appear in the order hint, in order."""
    items = [v for v in patch_list if not (isinstance(v, dict) and DIRECTIVE in v)]
    i = j = 0
    while i < len(items) and j < len(order):
        if _position([order[j]], items[i], key) == 0:
            i += 1
        j += 1
    if i < len(items):
        raise PatchError(f"The order in patch list:\n{patch_list}\n doesn't match {directive} list:\n"
                         f"{order}\n")


def _normalize_order(in_patch: list[Any], server_only: list[Any], patch_order: list[Any],
                     server_order: list[Any], key: str) -> list[Any]:
    """normalizeElementOrder + mergeSortedSlice: patch order wins, server-only items keep their slot."""
    left = sorted(server_only, key=lambda v: _position(server_order, v, key))
    right = sorted(in_patch, key=lambda v: _position(patch_order, v, key))
    out: list[Any] = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i])
            i += 1
        elif i >= len(left):
            out.append(right[j])
            j += 1
        else:
            li, ri = _position(server_order, left[i], key), _position(server_order, right[j], key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i])
                i += 1
            else:
                out.append(right[j])
                j += 1
    return out
