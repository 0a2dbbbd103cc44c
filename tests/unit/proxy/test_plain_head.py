"""The plain proxied request's head, rendered in one pass from the client's raw fields
(:func:`miniapi.proxy.forwarding.plain_head`), against the rules it stands for: what
:func:`~miniapi.proxy.target.forward_request_headers` keeps, rendered by :func:`~miniapi.proxy.http1.request`."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi import errors
from miniapi.proxy import http1
from miniapi.proxy.forwarding import plain_head
from miniapi.proxy.target import forward_request_headers

NAMES = ["Accept", "User-Agent", "Authorization", "Proxy-Authorization", "Cookie", "X-Forwarded-For",
         "x-forwarded-uri", "Content-Length", "Transfer-Encoding", "Keep-Alive", "TE", "Upgrade", "Host",
         "X-Custom", "x-custom", "Connection"]
VALUES = ["", "v", "a, b", "keep-alive", "X-Custom", "close, x-custom", "Bearer abc", "1.2.3.4", "\xe9t\xe9"]


def reference(method: str, target: str, host: str, raw: list[tuple[bytes, bytes]], client_ip: str, uri: str,
              length: str | None, chunked: bool) -> bytes:
    fields = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw]
    out = forward_request_headers(fields, client_ip, forwarded_uri=uri)
    if length is not None:
        out.append(("Content-Length", length))
    elif chunked:
        out.append(("Transfer-Encoding", "chunked"))
    return http1.request(method, target, host, tuple(out), user_agent=None)


def connection_values(raw: list[tuple[bytes, bytes]]) -> list[str]:
    return [v.decode("latin-1") for k, v in raw if k.lower() == b"connection"]


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from(VALUES)), max_size=8),
       st.sampled_from(["", "127.0.0.1"]), st.sampled_from(["", "/api/v1/namespaces/d/pods/p/proxy/x"]),
       st.sampled_from([None, "0", "12"]), st.booleans())
def test_one_pass_head_is_the_rules_head(fields: list[tuple[str, str]], client_ip: str, uri: str,
                                         length: str | None, chunked: bool) -> None:
    raw = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in fields]
    args = ("GET", "/x?y=1", "127.0.0.1:6443", raw)
    got = plain_head(*args, connection_values(raw), client_ip, uri, length, chunked)
    assert got == reference(*args, client_ip, uri, length, chunked)
    assert b"authorization" not in got.lower().replace(b"proxy-authorization", b"")


@pytest.mark.parametrize(("target", "raw"), [
    ("/a b", []),
    ("/a", [(b"X-A", b"v\r\nX-Injected: 1")]),
    ("/a", [(b"X-A", b"v\0")]),
    ("relative", []),
], ids=["space-in-target", "crlf-in-value", "nul-in-value", "relative-target"])
def test_what_would_split_the_head_is_a_400(target: str, raw: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(errors.ApiError) as caught:
        plain_head("GET", target, "h:1", raw, [], "127.0.0.1", "", None, False)
    assert caught.value.code == 400
