"""The ``fieldSelector`` query parameter, parsed and matched against objects of one kind.

Ported from k8s.io/apimachinery ``pkg/fields/selector.go``. Used by list and watch, notably the
watch-list that ``kubectl delete`` waits with: ``fieldSelector=metadata.name%3Dp3``.

Only ``=``, ``==`` and ``!=`` exist, ANDed by ``,``; ``\\,``, ``\\=`` and ``\\\\`` escape a value.
Each kind supports a fixed list of fields (:data:`FIELDS`, the real apiserver's field label
conversion funcs); any other is ``field label not supported: <field>`` (400). A missing field
compares as ``""``, booleans as ``"true"``/``"false"``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from miniapi.wire.selectors import SelectorError

__all__ = ["FIELDS", "FieldRequirement", "FieldSelector", "SelectorError", "field_value",
           "parse_field_selector"]


def _get(obj: Mapping[str, Any], dotted: str) -> str:
    value: Any = obj
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


_META = ("metadata.name", "metadata.namespace")
_EVENT = tuple(f"involvedObject.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion",
                                               "resourceVersion", "fieldPath"))
# Per kind, the field labels the real apiserver's GetAttrs / AddFieldLabelConversionFunc accept.
FIELDS: dict[str, tuple[str, ...]] = {
    "Pod": (*_META, "spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
            "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Node": (*_META, "spec.unschedulable"),
    "Secret": (*_META, "type"),
    "Event": (*_META, *_EVENT, "reason", "reportingComponent", "source", "type"),
    "CertificateSigningRequest": (*_META, "spec.signerName"),
    "Namespace": (*_META, "status.phase"),
    "Service": (*_META, "spec.clusterIP", "spec.type"),
    "ReplicaSet": (*_META, "status.replicas"),
    "Job": (*_META, "status.successful"),
}
_CUSTOM_GETTERS: dict[tuple[str, str], Callable[[Mapping[str, Any]], str]] = {
    ("Pod", "spec.hostNetwork"): lambda o: _get(o, "spec.hostNetwork") or "false",
    ("Node", "spec.unschedulable"): lambda o: _get(o, "spec.unschedulable") or "false",
    ("Event", "source"): lambda o: _get(o, "reportingComponent") or _get(o, "source.component"),
}


def field_value(kind: str, obj: Mapping[str, Any], field: str) -> str:
    """The string a field selector compares for ``field`` of ``obj`` (``""`` when unset)."""
    getter = _CUSTOM_GETTERS.get((kind, field))
    return getter(obj) if getter else _get(obj, field)


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    operator: str  # "=" (also for "==") or "!="
    value: str


@dataclass(frozen=True)
class FieldSelector:
    kind: str
    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((field_value(self.kind, obj, r.field) == r.value) == (r.operator == "=")
                   for r in self.requirements)

    def exact(self, field: str) -> str | None:
        """The value ``field`` must equal, if the selector pins it (``metadata.name=p3``)."""
        return next((r.value for r in self.requirements if r.field == field and r.operator == "="), None)


def parse_field_selector(text: str, kind: str = "") -> FieldSelector:
    """Parse ``fieldSelector`` for objects of ``kind`` ("" or an unlisted kind: metadata.name/namespace)."""
    supported = FIELDS.get(kind, _META)
    requirements = []
    for part in sorted(_split_unescaped(text)) if text else []:
        if not part:
            continue
        field, operator, raw = _split_term(part, text)
        if field not in supported:
            raise SelectorError(f"field label not supported: {field}")
        requirements.append(FieldRequirement(field, "!=" if operator == "!=" else "=", _unescape(raw)))
    return FieldSelector(kind, tuple(requirements))


def _split_unescaped(text: str) -> list[str]:
    parts, start, escaped = [], 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append(text[start:i])
            start = i + 1
    return [*parts, text[start:]]


def _split_term(part: str, whole: str) -> tuple[str, str, str]:
    for i in range(len(part)):
        for operator in ("!=", "==", "="):
            if part.startswith(operator, i):
                return part[:i], operator, part[i + len(operator):]
    raise SelectorError(f"invalid selector: '{whole}'; can't understand '{part}'")


def _unescape(value: str) -> str:
    out, escaped = [], False
    for ch in value:
        if escaped:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character in value: {ch}")
        else:
            out.append(ch)
    if escaped:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)
