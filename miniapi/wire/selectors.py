"""The ``labelSelector`` query parameter (and metav1.LabelSelector objects), parsed and matched.

Ported from k8s.io/apimachinery ``pkg/labels/selector.go``; the REST layer uses it for list and
watch (``kubectl get -l app=web``) and turns :class:`SelectorError` into a 400 BadRequest.
Field selectors live in ``fieldselectors.py``.

Label selectors (requirements are ANDed by ``,``)::

    app=web   app==web   tier!=db   env in (prod,staging)   env notin (dev)   app   !app   replicas>2

``!=`` and ``notin`` also match objects without the label; keys and values are validated like
label keys and values, so ``a$=b`` is ``unable to parse requirement: key: Invalid value: ...``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_NAME_RE = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_DNS_RE = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_NAME_MSG = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
             f"with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
             f"validation is '{_NAME_RE}')")
_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
              "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
              f"'12345', regex used for validation is '({_NAME_RE})?')")
_SPECIAL = "!=(),<>"
_OPERATORS = {"=": "=", "==": "==", "!=": "!=", "in": "in", "notin": "notin", ">": "gt", "<": "lt"}
_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}


class SelectorError(ValueError):
    """An unparsable or unsupported selector; the REST layer answers 400 BadRequest."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# --- label selectors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # =, ==, !=, in, notin, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.operator in ("=", "==", "in"):
            return present and labels[self.key] in self.values
        if self.operator in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        try:
            have, want = int(labels[self.key]), int(self.values[0])
        except (KeyError, ValueError):
            return False
        return have > want if self.operator == "gt" else have < want

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return f"!{self.key}"
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({','.join(self.values)})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """ANDed requirements; no requirements matches everything. ``nothing=True`` matches nothing."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        return not self.nothing and all(r.matches(labels or {}) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def parse_label_selector(text: str) -> Selector:
    """Parse the ``labelSelector`` query string (the same grammar as ``kubectl -l``)."""
    tokens = _lex(text)
    requirements: list[Requirement] = []
    pos = 0
    while tokens[pos][0] != "EOS":
        if tokens[pos][0] not in ("ID", "!"):
            raise SelectorError(f"found '{tokens[pos][1]}', expected: !, identifier, or 'end of string'")
        try:
            requirement, pos = _requirement(tokens, pos)
        except SelectorError as exc:
            raise SelectorError(f"unable to parse requirement: {exc.message}") from None
        requirements.append(requirement)
        kind, literal = tokens[pos]
        if kind == ",":
            pos += 1
            if tokens[pos][0] not in ("ID", "!"):
                raise SelectorError(f"found '{tokens[pos][1]}', expected: identifier after ','")
        elif kind != "EOS":
            raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def _lex(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, literal): kind is ID, EOS, or the symbol/keyword itself."""
    tokens, i = [], 0
    while i < len(text):
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _SPECIAL:
            symbol = text[i:i + 2] if text[i:i + 2] in ("!=", "==") else ch
            tokens.append((symbol, symbol))
            i += len(symbol)
        else:
            j = i
            while j < len(text) and text[j] not in _SPECIAL and text[j] not in " \t\r\n":
                j += 1
            tokens.append(("ID", text[i:j]))  # "in"/"notin" are operators only in operator position
            i = j
    return [*tokens, ("EOS", "")]


def _requirement(tokens: list[tuple[str, str]], pos: int) -> tuple[Requirement, int]:
    negated = tokens[pos][0] == "!"
    pos += negated
    kind, key = tokens[pos]
    if kind != "ID":
        raise SelectorError(f"found '{key}', expected: identifier")
    _validate_key(key)
    pos += 1
    if negated or tokens[pos][0] in (",", "EOS"):
        return Requirement(key, "!" if negated else "exists"), pos
    operator = _OPERATORS.get(tokens[pos][1])
    if operator is None:
        raise SelectorError(f"found '{tokens[pos][1]}', expected: {', '.join(sorted(_OPERATORS))}")
    pos += 1
    if operator in ("in", "notin"):
        values, pos = _value_list(tokens, pos)
    elif tokens[pos][0] in (",", "EOS"):
        values = {""}  # "a=" selects an empty value
    elif tokens[pos][0] == "ID":
        values, pos = {tokens[pos][1]}, pos + 1
    else:
        raise SelectorError(f"found '{tokens[pos][1]}', expected: identifier")
    for value in values:
        _validate_value(value, operator)
    return Requirement(key, operator, tuple(sorted(values))), pos


def _value_list(tokens: list[tuple[str, str]], pos: int) -> tuple[set[str], int]:
    """parseValues + parseIdentifiersList: "()" is {""}, "(a,)" and "(,a)" include ""."""
    if tokens[pos][0] != "(":
        raise SelectorError(f"found '{tokens[pos][1]}' expected: '('")
    pos += 1
    if tokens[pos][0] == ")":
        return {""}, pos + 1
    if tokens[pos][0] not in ("ID", ","):
        raise SelectorError(f"found '{tokens[pos][1]}', expected: ',', ')' or identifier")
    values: set[str] = set()
    while True:
        kind, literal = tokens[pos]
        pos += 1
        if kind == "ID":
            values.add(literal)
            if tokens[pos][0] == ")":
                return values, pos + 1
            if tokens[pos][0] != ",":
                raise SelectorError(f"found '{tokens[pos][1]}', expected: ',' or ')'")
        elif kind == ",":
            if not values or tokens[pos][0] in (",", ")"):
                values.add("")
            if tokens[pos][0] == ")":
                return values, pos + 1
            if tokens[pos][0] == ",":
                pos += 1
        else:
            raise SelectorError(f"found '{literal}', expected: ',', or identifier")


def _validate_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if key.count("/") > 1:
        problem = "a qualified name must have at most one '/'"
    elif "/" in key and (not prefix or len(prefix) > 253 or not re.fullmatch(_DNS_RE, prefix)):
        problem = ("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                   "characters, '-' or '.', and must start and end with an alphanumeric character")
    elif not name:
        problem = "name part must be non-empty"
    elif len(name) > 63:
        problem = "name part must be no more than 63 characters"
    elif not re.fullmatch(_NAME_RE, name):
        problem = _NAME_MSG
    else:
        return
    raise SelectorError(f'key: Invalid value: "{key}": {problem}')


def _validate_value(value: str, operator: str) -> None:
    if operator in ("gt", "lt"):
        try:
            int(value)
        except ValueError:
            raise SelectorError(f'values[0]: Invalid value: "{value}": for \'Gt\', \'Lt\' operators, '
                                "the value must be an integer") from None
    elif len(value) > 63:
        raise SelectorError(f'values[0]: Invalid value: "{value}": must be no more than 63 characters')
    elif value and not re.fullmatch(_NAME_RE, value):
        raise SelectorError(f'values[0]: Invalid value: "{value}": {_VALUE_MSG}')


def label_selector_from_set(labels: Mapping[str, str]) -> Selector:
    """A plain map selector (Service.spec.selector, ReplicationController): every pair must match."""
    if not isinstance(labels, Mapping):
        raise SelectorError("a label selector map must be an object of strings")
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError(f"label selector map entry {key!r}: {value!r} is not a pair of strings")
        _validate_key(key)
        _validate_value(value, "=")
    return Selector(tuple(Requirement(k, "=", (v,)) for k, v in sorted(labels.items())))


def label_selector_from_dict(selector: Mapping[str, Any] | None) -> Selector:
    """metav1.LabelSelector {matchLabels, matchExpressions}; ``None`` matches nothing, ``{}`` everything."""
    if selector is None:
        return Selector(nothing=True)
    if not isinstance(selector, Mapping):
        raise SelectorError("a label selector must be an object")
    requirements = list(label_selector_from_set(selector.get("matchLabels") or {}).requirements)
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError("matchExpressions must be a list")
    requirements += [_expression(e) for e in expressions]
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def _expression(expression: Any) -> Requirement:
    if not isinstance(expression, Mapping):
        raise SelectorError("a matchExpressions entry must be an object")
    raw_operator, key = expression.get("operator"), expression.get("key")
    values = expression.get("values") or []
    operator = _EXPRESSION_OPS.get(raw_operator) if isinstance(raw_operator, str) else None
    if operator is None:
        raise SelectorError(f'"{raw_operator}" is not a valid label selector operator')
    if not (isinstance(key, str) and isinstance(values, list) and all(isinstance(v, str) for v in values)):
        raise SelectorError("a matchExpressions entry needs a string key and a list of string values")
    _validate_key(key)
    if operator in ("in", "notin") and not values:
        raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
    if operator in ("exists", "!") and values:
        raise SelectorError("values set must be empty for exists and does not exist")
    for value in values:
        _validate_value(value, operator)
    return Requirement(key, operator, tuple(sorted(set(values))))
