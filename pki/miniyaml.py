"""Just enough YAML for kubeconfig files, without PyYAML (a test-only dependency here).

``dump`` writes block-style YAML the way kubectl and kubeadm do (sequences of mappings at the
parent key's indentation, ``{}`` for an empty mapping)::

    apiVersion: v1
    clusters:
    - cluster:
        certificate-authority-data: LS0tLS1CRUdJTi...
        server: https://127.0.0.1:6443
      name: kubernetes
    preferences: {}

A string is written plain only when it cannot be read back as anything else (no leading digit or
sign, no spaces, not ``true``/``no``/``null``...); otherwise double-quoted with YAML escapes.

``load`` reads JSON, or the block subset that ``dump`` and kubectl write: mappings, sequences,
plain / single- / double-quoted scalars, ``{}``, ``[]``, ``#`` comment lines and ``---``. It raises
``ValueError`` on anything else (anchors, tags, block scalars ``|``, flow collections with content,
comments after a value).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./:@+=-]*")
_RESERVED = {"y", "n", "yes", "no", "true", "false", "on", "off", "null", "~"}
_INT = re.compile(r"[-+]?[0-9]+")
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v", "f": "\f",
    "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\", "N": "\x85",
    "_": "\xa0", "L": "\u2028", "P": "\u2029",
}  # fmt: skip
_HEX_LEN = {"x": 2, "u": 4, "U": 8}


def dump(obj: Any) -> str:
    """Block-style YAML for dicts, lists, str, int, bool and None."""
    return "\n".join(_emit(obj, 0)) + "\n"


def load(text: str) -> Any:
    """Parse JSON or the YAML subset described in the module docstring."""
    if text.lstrip().startswith(("{", "[")) and text.strip() not in ("{}", "[]"):
        return json.loads(text)
    lines = _lines(text)
    if not lines:
        return None
    value, i = _block(lines, 0, lines[0].indent)
    if i != len(lines):
        raise ValueError(f"line {lines[i].number}: unexpected indentation")
    return value


# --- emitting -------------------------------------------------------------------------------------


def _emit(obj: Any, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(obj, Mapping) and obj:
        out: list[str] = []
        for key, value in obj.items():
            out += _emit_entry(f"{pad}{_scalar(str(key))}:", value, indent)
        return out
    if isinstance(obj, Sequence) and not isinstance(obj, str) and obj:
        out = []
        for item in obj:
            sub = _emit(item, indent + 2)
            out += [f"{pad}- {sub[0][indent + 2 :]}", *sub[1:]]
        return out
    return [pad + _scalar(obj)]


def _emit_entry(head: str, value: Any, indent: int) -> list[str]:
    if isinstance(value, Mapping) and value:
        return [head, *_emit(value, indent + 2)]
    if isinstance(value, Sequence) and not isinstance(value, str) and value:
        return [head, *_emit(value, indent)]
    return [f"{head} {_scalar(value)}"]


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]"
    if not isinstance(value, str):
        raise TypeError(f"cannot write {type(value).__name__} as YAML")
    if _PLAIN.fullmatch(value) and not value.endswith(":") and value.lower() not in _RESERVED:
        return value
    return _quote(value)


def _quote(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif _printable(code):
            out.append(ch)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return "".join(out) + '"'


def _printable(code: int) -> bool:
    if code in (0x2028, 0x2029, 0xFEFF):
        return False
    return 0x20 <= code <= 0x7E or 0xA0 <= code <= 0xD7FF or 0xE000 <= code <= 0xFFFD or code >= 0x10000


# --- loading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    indent: int
    text: str
    number: int


def _lines(text: str) -> list[_Line]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.lstrip(" ")
        if body.startswith("\t") and body.strip():
            raise ValueError(f"line {number}: tabs are not allowed in indentation")
        if body.rstrip() and not body.startswith("#") and body.rstrip() not in ("---", "..."):
            out.append(_Line(len(raw) - len(body), body.rstrip(), number))
    return out


def _block(lines: list[_Line], i: int, indent: int) -> tuple[Any, int]:
    if _is_item(lines[i].text):
        return _sequence(lines, i, indent)
    if _split_key(lines[i]) is not None:
        return _mapping(lines, i, indent)
    if i + 1 < len(lines) and lines[i + 1].indent > indent:
        raise ValueError(f"line {lines[i + 1].number}: multi-line scalars are not supported")
    return _parse_scalar(lines[i].text, lines[i].number), i + 1


def _mapping(lines: list[_Line], i: int, indent: int) -> tuple[dict[str, Any], int]:
    out: dict[str, Any] = {}
    while i < len(lines) and lines[i].indent == indent and not _is_item(lines[i].text):
        line = lines[i]
        split = _split_key(line)
        if split is None:
            raise ValueError(f"line {line.number}: expected 'key: value'")
        key, rest = split
        if key in out:
            raise ValueError(f"line {line.number}: duplicate key {key!r}")
        i += 1
        if rest:
            out[key] = _parse_scalar(rest, line.number)
        elif i < len(lines) and (
            lines[i].indent > indent or (lines[i].indent == indent and _is_item(lines[i].text))
        ):
            out[key], i = _block(lines, i, lines[i].indent)
        else:
            out[key] = None
    if i < len(lines) and lines[i].indent > indent:
        raise ValueError(f"line {lines[i].number}: unexpected indentation")
    return out, i


def _sequence(lines: list[_Line], i: int, indent: int) -> tuple[list[Any], int]:
    out: list[Any] = []
    while i < len(lines) and lines[i].indent == indent and _is_item(lines[i].text):
        line = lines[i]
        rest = line.text[1:]
        body = rest.lstrip(" ")
        if body:  # "- key: v" opens a mapping whose keys line up with "key"
            lines[i] = _Line(indent + 1 + len(rest) - len(body), body, line.number)
            value, i = _block(lines, i, lines[i].indent)
        elif i + 1 < len(lines) and lines[i + 1].indent > indent:
            value, i = _block(lines, i + 1, lines[i + 1].indent)
        else:
            value, i = None, i + 1
        out.append(value)
    return out, i


def _is_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _split_key(line: _Line) -> tuple[str, str] | None:
    text = line.text
    if text[0] in "\"'":
        key, end = _quoted(text, 0, line.number)
        rest = text[end:]
        if rest == ":" or rest.startswith(": "):
            return key, rest[1:].strip()
        return None
    if text[0] in "{[&*!|>%@`":
        return None
    if text.endswith(":"):
        return text[:-1], ""
    key, sep, rest = text.partition(": ")
    return (key, rest.strip()) if sep else None


def _parse_scalar(text: str, number: int) -> Any:
    if text[0] in "\"'":
        value, end = _quoted(text, 0, number)
        if text[end:].strip():
            raise ValueError(f"line {number}: text after a quoted string")
        return value
    if text in ("{}", "[]"):
        return {} if text == "{}" else []
    if text[0] in "{[&*!|>%@`" or " #" in text:
        raise ValueError(f"line {number}: unsupported YAML {text[:20]!r}")
    if text in ("null", "Null", "NULL", "~"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return int(text) if _INT.fullmatch(text) else text


def _quoted(text: str, start: int, number: int) -> tuple[str, int]:
    """Read the quoted string starting at ``start``; return it and the index after the quote."""
    quote, i = text[start], start + 1
    out: list[str] = []
    while i < len(text):
        ch = text[i]
        if quote == "'" and ch == "'":
            if text[i + 1 : i + 2] != "'":
                return "".join(out), i + 1
            out.append("'")
            i += 2
        elif quote == '"' and ch == '"':
            return "".join(out), i + 1
        elif quote == '"' and ch == "\\":
            decoded, i = _escape(text, i + 1, number)
            out.append(decoded)
        else:
            out.append(ch)
            i += 1
    raise ValueError(f"line {number}: unterminated quoted string")


def _escape(text: str, i: int, number: int) -> tuple[str, int]:
    code = text[i : i + 1]
    if code in _ESCAPES:
        return _ESCAPES[code], i + 1
    width = _HEX_LEN.get(code)
    digits = text[i + 1 : i + 1 + width] if width else ""
    if not width or len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
        raise ValueError(f"line {number}: bad escape sequence \\{code}")
    return chr(int(digits, 16)), i + 1 + width
