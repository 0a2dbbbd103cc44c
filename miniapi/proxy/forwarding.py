"""What a plain proxied request sends and what the client gets back, worked out in one pass: rule 4
of :mod:`miniapi.proxy.target` (headers) rendered as :mod:`miniapi.proxy.http1` renders a head. Pure,
no I/O; :mod:`miniapi.endpoints.proxy` does the exchange.

1. **The backend's request head** (:func:`plain_head`) straight from the client's raw fields: the
   bytes ``http1.request(method, target, host, forward_request_headers(...) + [Content-Length or
   Transfer-Encoding], user_agent=None)`` gives, without decoding every field first::

       GET /bench HTTP/1.1\r\n            <- the cleaned, escaped path and the raw query
       Host: 127.0.0.1:6443\r\n           <- the client's Host, kept
       Accept: */*\r\n                    <- the client's fields minus hop-by-hop and Authorization
       X-Forwarded-For: 127.0.0.1\r\n
       X-Forwarded-Uri: /api/v1/namespaces/default/services/bench:http/proxy/bench\r\n
       \r\n

   A part that would split the head (CR, LF, NUL; a space in the method or target) goes the long way,
   for its 400 ``invalid character in HTTP request head``.
2. **The client's view of a response head** (:func:`client_view`): the forwarded fields (no
   hop-by-hop, no CORS), the same without Content-Length (for an answer sent whole) and whether it
   is an html page to rewrite. A function of the head alone, and heads repeat (they are parsed once,
   :func:`~miniapi.proxy.http1.parse_head_bytes`), so it is worked out once per distinct head.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from miniapi import errors
from miniapi.proxy import htmlrewrite, http1
from miniapi.proxy.target import DROP_PLAIN, HOP_BY_HOP, forward_request_headers, forward_response_headers


def str_fields(raw: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The client's raw fields as text (latin-1: every byte kept as it came)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]


_DROP_PLAIN_RAW = frozenset(name.encode() for name in DROP_PLAIN)  # as the raw names come, lowered


def plain_head(method: str, target: str, host: str, raw: Sequence[tuple[bytes, bytes]], connection: Sequence[str],
               client_ip: str, uri: str, length: str | None, chunked: bool) -> bytes:
    """A plain request's head for the backend, from the client's raw fields in one pass: the bytes
    :func:`~miniapi.proxy.target.forward_request_headers` + :func:`~miniapi.proxy.http1.request` give
    (``connection``: the client's Connection values). Anything those would refuse goes through them,
    for their error."""
    try:
        head = _render_plain_head(method, target, host, raw, connection, client_ip, uri, length, chunked)
    except UnicodeEncodeError:
        head = None
    if head is not None:
        return head
    out = forward_request_headers(str_fields(raw), client_ip, forwarded_uri=uri)
    if length is not None:
        out.append(("Content-Length", length))
    elif chunked:
        out.append(("Transfer-Encoding", "chunked"))
    return request_head(method, target, host, out)  # raises its 400


def _render_plain_head(method: str, target: str, host: str, raw: Sequence[tuple[bytes, bytes]],
                       connection: Sequence[str], client_ip: str, uri: str, length: str | None, chunked: bool
                       ) -> bytes | None:
    """:func:`plain_head`'s one pass; None when a part would split the head."""
    drop = _DROP_PLAIN_RAW
    if connection:
        named = {t.strip().lower() for v in connection for t in v.split(",") if t.strip()}
        if not named <= HOP_BY_HOP:
            drop = drop | {n.encode("utf-8", "surrogateescape") for n in named}
    lines = [f"{method} {target} HTTP/1.1\r\nHost: {host}".encode("latin-1")]
    prior = []
    for name, value in raw:
        low = name.lower()
        if low not in drop:
            lines.append(name + b": " + value)
        elif low == b"x-forwarded-for":
            prior.append(value)
    if client_ip:
        prior.append(client_ip.encode("latin-1"))
    if prior and (forwarded_for := b", ".join(prior)):
        lines.append(b"X-Forwarded-For: " + forwarded_for)
    if uri:
        lines.append(b"X-Forwarded-Uri: " + uri.encode("latin-1"))
    if length is not None:
        lines.append(b"Content-Length: " + length.encode("latin-1"))
    elif chunked:
        lines.append(b"Transfer-Encoding: chunked")
    lines += (b"", b"")
    head = b"\r\n".join(lines)
    breaks = len(lines)  # the joins and the one after the request line
    if head.count(b"\r") == breaks and head.count(b"\n") == breaks and b"\0" not in head and \
            " " not in method and " " not in target and target.startswith("/"):
        return head
    return None


def request_head(method: str, target: str, host: str, headers: list[tuple[str, str]]) -> bytes:
    """:func:`~miniapi.proxy.http1.request` without a User-Agent of our own; its refusal is a 400."""
    try:
        return http1.request(method, target, host, tuple(headers), user_agent=None)
    except ValueError as exc:
        raise errors.bad_request(str(exc)) from None


@dataclass(frozen=True)
class ClientView:
    """What the client gets of a backend response's head (rule 4 of target.py), worked out once per
    distinct head (heads are kept, :func:`~miniapi.proxy.http1.parse_head_bytes`)."""

    fields: tuple[tuple[str, str], ...]  # no hop-by-hop, no CORS (a Location is rewritten per request)
    without_length: tuple[tuple[str, str], ...]  # the same without Content-Length, for a whole answer
    html: bool  # a page whose links are rewritten (htmlrewrite.applies)


@functools.lru_cache(maxsize=256)
def client_view(headers: http1.Headers) -> ClientView:
    """Rule 4 for the way back, once per distinct head (Location aside: it depends on the request)."""
    fields = tuple(forward_response_headers(headers.items, headers.get_all("Connection")))
    html = "html" in headers.get("Content-Type").lower() and htmlrewrite.applies(fields)
    return ClientView(fields, tuple(f for f in fields if f[0].lower() != "content-length"), html)
