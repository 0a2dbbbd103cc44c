"""Go's encoding/json bytes: compact, Encoder (newline), MarshalIndent; HTML escaping; isPrettyPrint."""

from __future__ import annotations

from typing import Any

import pytest

from miniapi.wire.gojson import encode, marshal, wants_pretty


@pytest.mark.parametrize(("obj", "indent", "expected"), [
    ({"a": "<b>&x", "u": "ü", "e": [], "o": {}}, None, b'{"a":"\\u003cb\\u003e\\u0026x","u":"\xc3\xbc","e":[],"o":{}}'),
    ({"s": "line\u2028sep\u2029"}, None, b'{"s":"line\\u2028sep\\u2029"}'),
    ({"a": [1, {"b": None}], "e": []}, " ", b'{\n "a": [\n  1,\n  {\n   "b": null\n  }\n ],\n "e": []\n}'),
    ({"k": {}}, "  ", b'{\n  "k": {}\n}'),
], ids=["compact-html-escaped", "line-separators", "one-space-indent", "two-space-indent"])
def test_marshal_matches_encoding_json(obj: Any, indent: str | None, expected: bytes) -> None:
    assert marshal(obj, indent) == expected


def test_encode_is_the_api_codec() -> None:
    assert encode({"kind": "Status", "code": 404}) == b'{"kind":"Status","code":404}\n'
    assert encode({"kind": "Status", "code": 404}, pretty=True) == b'{\n  "kind": "Status",\n  "code": 404\n}'


@pytest.mark.parametrize(("query", "agent", "pretty"), [
    ({}, "kubectl/v1.37.0 (linux/amd64) kubernetes/abcdef", False),
    ({}, "OpenAPI-Generator/33.1.0/python", False),
    ({}, "curl/7.88.1", True),
    ({}, "Wget/1.21.3", True),
    ({}, "Mozilla/5.0 (X11; Linux x86_64)", True),
    ({"pretty": "true"}, "kubectl/v1.37.0", True),
    ({"pretty": "1"}, "", True),
    ({"pretty": "false"}, "curl/7.88.1", False),
    ({"pretty": "yes"}, "curl/7.88.1", False),  # strconv.ParseBool fails: not pretty
], ids=["kubectl", "python-client", "curl", "wget", "browser", "query-true", "query-1", "query-false-wins",
        "query-junk"])
def test_wants_pretty_is_is_pretty_print(query: dict[str, str], agent: str, pretty: bool) -> None:
    assert wants_pretty(query, agent) is pretty
