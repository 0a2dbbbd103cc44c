"""Request bodies in, JSON out: the content negotiation of the REST handlers.

Bodies may be JSON (also when no Content-Type is sent, as the Python client does), YAML (when PyYAML is
installed) or Kubernetes protobuf (``application/vnd.kubernetes.protobuf``, which kubectl's typed
clients send since 1.32; see miniapi.wire.protobuf). Answers are always JSON: every client we serve
lists JSON in its Accept header.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from miniapi import errors
from miniapi.wire import gojson, protobuf

PROTOBUF = "application/vnd.kubernetes.protobuf"
_JSON_TYPES = ("application/json", "", "text/plain", "application/octet-stream")
_YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


def pretty(request: web.Request | None) -> bool:
    if request is None:
        return False
    query = request.query if "pretty" in request.query_string else {}  # parse the query only if it may say
    return gojson.wants_pretty(query, request.headers.get("User-Agent", ""))


def json_response(obj: Any, status: int = 200, content_type: str = "application/json",
                  request: web.Request | None = None) -> web.Response:
    """The API codec's answer (json.Encoder: compact, newline-terminated; indented for curl & co.)."""
    return encoded_response(gojson.encode(obj, pretty(request)), status, content_type)


def raw_json_response(obj: Any, indent: str | None = None, content_type: str = "application/json") -> web.Response:
    """A handler that writes json.Marshal / json.MarshalIndent bytes itself (no codec, no newline)."""
    resp = web.Response(body=gojson.marshal(obj, indent))
    resp.headers["Content-Type"] = content_type
    return resp


def encoded_response(body: bytes, status: int = 200, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=body, content_type=content_type)  # bytes: no charset added


def dumps(obj: Any) -> bytes:
    """The JSON bytes :func:`json_response` sends for ``obj`` to a client that is not pretty-printed."""
    return gojson.encode(obj)


def media_type(request: web.Request) -> str:
    return request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.bad_request(f"the server rejected our request due to an error in our request: "
                                 f"invalid JSON: {exc}") from None


def parse_yaml(raw: bytes) -> Any:
    try:
        import yaml
    except ImportError:
        return parse_json(raw)
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise errors.bad_request(f"error converting YAML to JSON: {exc}") from None


async def read_body(request: web.Request) -> bytes:
    return await request.read()


def decode_object(raw: bytes, ctype: str) -> dict[str, Any]:
    """Decode a request body into a JSON object (dict) or raise a 400/415 Status."""
    if ctype == PROTOBUF:
        try:
            obj: Any = protobuf.decode(raw)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"the body of the request was not valid protobuf: {exc}") from None
    elif ctype in _YAML_TYPES:
        obj = parse_yaml(raw)
    elif ctype in _JSON_TYPES or ctype.endswith("+json"):
        if not raw.strip():
            raise errors.bad_request("the server rejected our request due to an error in our request: "
                                     "empty body")
        obj = parse_json(raw)
    else:
        raise errors.unsupported_media_type(ctype)
    if not isinstance(obj, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    return obj


async def read_object(request: web.Request) -> dict[str, Any]:
    return decode_object(await read_body(request), media_type(request))
