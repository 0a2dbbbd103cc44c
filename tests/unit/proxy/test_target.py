"""The apiserver proxy's pure rules (miniapi/proxy/target.py): parser, path cleaning, addresses, headers,
Location rewriting. Tables first, then hypothesis on every parser."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.proxy.target import (
    ProxyId,
    ProxyRequestError,
    address_refusal,
    backend_path,
    forward_request_headers,
    forward_response_headers,
    forwarded_uri,
    is_upgrade,
    numeric_port,
    path_prepend,
    rewrite_location,
    split_scheme_name_port,
)


@pytest.mark.parametrize("text,want", [
    ("p", ProxyId("", "p", "")),
    ("p:8080", ProxyId("", "p", "8080")),
    ("https:p:8443", ProxyId("https", "p", "8443")),
    ("https:p:", ProxyId("https", "p", "")),
    ("https:p", ProxyId("", "https", "p")),  # two parts are name:port, as in the real parser
    ("http:p:http", ProxyId("http", "p", "http")),
], ids=["name", "name-port", "scheme-name-port", "scheme-name", "two-parts", "named-port"])
def test_split_scheme_name_port(text: str, want: ProxyId) -> None:
    assert split_scheme_name_port(text) == want


@pytest.mark.parametrize("text", ["", ":80", "ftp:p:80", "a:b:c:d", "https::443", "HTTPS:p:1"])
def test_split_refuses(text: str) -> None:
    with pytest.raises(ProxyRequestError):
        split_scheme_name_port(text)


@given(st.text(alphabet="ab:ps1", max_size=12))
def test_split_never_crashes_and_round_trips(text: str) -> None:
    try:
        pid = split_scheme_name_port(text)
    except ProxyRequestError:
        return
    assert pid.name and pid.scheme in ("", "http", "https") and ":" not in pid.name
    assert ":".join(p for p in (pid.scheme, pid.name, pid.port) if p) in text


@pytest.mark.parametrize("port,want", [("", None), ("1", 1), ("65535", 65535)])
def test_numeric_port(port: str, want: int | None) -> None:
    assert numeric_port(port) == want


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", "+1", "١٢", " 80"])
def test_numeric_port_refuses(port: str) -> None:
    with pytest.raises(ProxyRequestError):
        numeric_port(port)


@pytest.mark.parametrize("parts,slash,want", [
    ([], False, ""),
    ([], True, "/"),
    (["a", "b"], False, "/a/b"),
    (["a", "b"], True, "/a/b/"),
    (["a", "..", "..", "..", "etc"], False, "/etc"),
    (["", "", "x", "", "y"], True, "/x/y/"),
    ([".", "..", "."], False, "/"),
], ids=["empty", "slash", "plain", "trailing", "dotdot", "empties", "dots"])
def test_backend_path(parts: list[str], slash: bool, want: str) -> None:
    assert backend_path(parts, slash) == want


@given(st.lists(st.sampled_from(["a", "..", ".", "", "b c", "%2e", "/"]), max_size=8), st.booleans())
def test_backend_path_stays_rooted_and_clean(parts: list[str], slash: bool) -> None:
    path = backend_path(parts, slash)
    assert path == "" or path.startswith("/")
    segments = path.strip("/").split("/")
    assert ".." not in segments and "." not in segments
    assert "//" not in path


@pytest.mark.parametrize("address,own,refused", [
    ("10.244.1.5", [], False),  # global unicast (private included): allowed, as IsGlobalUnicast
    ("127.244.1.5", ["127.244.1.5"], False),  # loopback, the target's own
    ("127.244.1.5", [], True),
    ("127.0.0.1", ["127.0.0.1"], True),  # the apiserver's own host, even if claimed
    ("::1", ["::1"], True),
    ("169.254.169.254", ["169.254.169.254"], True),  # link-local: never
    ("fe80::1", [], True),
    ("0.0.0.0", [], True),
    ("224.0.0.1", [], True),
    ("255.255.255.255", [], True),
    ("node1", [], True),  # a name is never dialled as such
], ids=["private", "own-loopback", "foreign-loopback", "apiserver", "apiserver-v6", "metadata", "ll-v6",
        "unspecified", "multicast", "broadcast", "name"])
def test_address_refusal(address: str, own: list[str], refused: bool) -> None:
    assert (address_refusal(address, own) is not None) is refused


def test_request_headers() -> None:
    headers = [("Host", "api:6443"), ("Authorization", "Bearer x"), ("Connection", "keep-alive, X-Hop"),
               ("X-Hop", "1"), ("Keep-Alive", "5"), ("Te", "trailers"), ("Cookie", "a=b"),
               ("X-Forwarded-For", "10.0.0.1"), ("Content-Length", "3"), ("Accept", "*/*")]
    out = forward_request_headers(headers, "127.0.0.1", forwarded_uri="/api/v1/x/proxy/y")
    assert out == [("Cookie", "a=b"), ("Accept", "*/*"), ("X-Forwarded-For", "10.0.0.1, 127.0.0.1"),
                   ("X-Forwarded-Uri", "/api/v1/x/proxy/y")]


def test_upgrade_request_keeps_the_handshake_headers() -> None:
    headers = [("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Authorization", "Bearer x"),
               ("Sec-WebSocket-Key", "k")]
    assert is_upgrade(headers)
    assert forward_request_headers(headers, "127.0.0.1", upgrade=True) == [
        ("Connection", "Upgrade"), ("Upgrade", "websocket"), ("Sec-WebSocket-Key", "k"),
        ("X-Forwarded-For", "127.0.0.1")]
    assert not is_upgrade([("Connection", "keep-alive"), ("Upgrade", "h2c")])
    assert not is_upgrade([("Connection", "upgrade")])


def test_response_headers_lose_hop_by_hop_and_cors() -> None:
    headers = [("Content-Type", "text/plain"), ("Transfer-Encoding", "chunked"), ("Connection", "close"),
               ("Access-Control-Allow-Origin", "*"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert forward_response_headers(headers) == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"),
                                                 ("Set-Cookie", "b=2")]


PREFIX = "/api/v1/namespaces/default/pods/p:8080/proxy"


@pytest.mark.parametrize("location,want", [
    ("http://127.244.1.2:8080/login", f"{PREFIX}/login"),
    ("/login?next=%2Fa", f"{PREFIX}/login?next=%2Fa"),
    ("http://127.244.1.2:8080/dir/", f"{PREFIX}/dir/"),
    ("https://evil.example:443/x", "https://evil.example:443/x"),
    ("relative/path", "relative/path"),
    ("https://api:6443/other", f"https://api:6443{PREFIX}/other"),
    (f"{PREFIX}/already", f"{PREFIX}/already"),
], ids=["backend-absolute", "path-absolute", "trailing-slash", "other-host", "relative", "request-host",
        "already-prefixed"])
def test_rewrite_location(location: str, want: str) -> None:
    assert rewrite_location(location, "127.244.1.2:8080", "api:6443", PREFIX) == want


def test_prepend_and_forwarded_uri() -> None:
    assert path_prepend(f"{PREFIX}/a/b", "/a/b") == PREFIX
    assert path_prepend(f"{PREFIX}/", "/") == PREFIX
    assert path_prepend(f"{PREFIX}/x/../y", "/y") == f"{PREFIX}/x/.."  # strings.TrimSuffix, as real
    assert forwarded_uri(PREFIX, "/a/") == f"{PREFIX}/a/"


@given(st.text(max_size=40))
def test_rewrite_location_never_crashes(location: str) -> None:
    assert isinstance(rewrite_location(location, "h:1", "api:6443", PREFIX), str)
