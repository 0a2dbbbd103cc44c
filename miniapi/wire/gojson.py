"""JSON bytes exactly as Go's encoding/json writes them, for the apiserver's and the kubelet's answers.

Go keeps UTF-8 as is but escapes ``<``, ``>``, ``&``, U+2028 and U+2029 (HTML-safe by default), and
has three shapes, each used by a different real writer::

    json.Marshal            {"kind":"Status","code":404}           (configz, OIDC discovery documents)
    json.Encoder.Encode     {"kind":"Status","code":404}\\n         (the API codec: objects, lists, Status)
    json.MarshalIndent      {\\n  "kind": "Status",\\n  "code": 404\\n}  (no newline; indent "  " or " ")

The apiserver's codec switches to MarshalIndent with two spaces when the client looks human
(:func:`wants_pretty`: ``?pretty=true``, or a ``curl``, ``Wget`` or ``Mozilla/5.0`` User-Agent).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
_HUMAN_AGENTS = ("curl", "Wget", "Mozilla/5.0")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")  # strconv.ParseBool's true spellings


def marshal(obj: Any, indent: str | None = None) -> bytes:
    """json.Marshal, or json.MarshalIndent(obj, "", indent)."""
    if indent is None:
        out = _COMPACT.encode(obj)
    else:
        out = json.dumps(obj, indent=indent, separators=(",", ": "), ensure_ascii=False)
    for char, escaped in _ESCAPES:
        if char in out:
            out = out.replace(char, escaped)
    return out.encode()


def encode(obj: Any, pretty: bool = False) -> bytes:
    """The API codec: json.Encoder.Encode (compact, newline), or two-space MarshalIndent when pretty."""
    return marshal(obj, "  ") if pretty else marshal(obj) + b"\n"


def wants_pretty(query: Mapping[str, str], user_agent: str) -> bool:
    """isPrettyPrint: a ``pretty`` query value that strconv.ParseBool reads decides (junk means no);
    without one, a human client (curl, Wget, a browser) gets indented JSON."""
    value = query.get("pretty", "")
    if value:
        return value in _TRUE
    return user_agent.startswith(_HUMAN_AGENTS)
