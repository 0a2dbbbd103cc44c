"""The sans-IO HTTP/1.1 client codec, byte by byte (no sockets)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miniapi.proxy.errors import ProtocolError
from miniapi.proxy.http1 import Data, EndOfMessage, Response, ResponseParser, State, Switched, request


def run(wire: bytes, cuts: list[int] | None = None, eof: bool = False) -> list[object]:
    parser = ResponseParser()
    events: list[object] = []
    last = 0
    for cut in sorted(cuts or []) + [len(wire)]:
        events += parser.feed(wire[last:cut])
        last = cut
    if eof:
        events += parser.feed_eof()
    return events


def body_of(events: list[object]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Data))


def test_request_head_is_what_go_sends() -> None:
    assert request("GET", "/containerLogs/default/p/c1?follow=true", "127.0.0.2:10250") == (
        b"GET /containerLogs/default/p/c1?follow=true HTTP/1.1\r\nHost: 127.0.0.2:10250\r\n"
        b"User-Agent: Go-http-client/1.1\r\n\r\n")


@pytest.mark.parametrize("target", ["/a\r\nX-Injected: 1", "/a b", "relative", "/a\n"], ids=repr)
def test_request_refuses_what_would_split_the_head(target: str) -> None:
    with pytest.raises(ValueError):
        request("GET", target, "h:1")


@pytest.mark.parametrize("host,headers", [
    ("h:1\r\nX-Injected: 1", ()),
    ("h:1", (("X-A", "v\r\nX-Injected: 1"),)),
    ("h:1", (("X-A\n", "v"),)),
    ("h:1", (("X-A", "v\rx"),)),
    ("h:1", (("X-A", "v\0"),)),
], ids=["host-crlf", "value-crlf", "name-lf", "value-cr", "value-nul"])
def test_request_refuses_split_fields(host: str, headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(ValueError, match="invalid character in HTTP request head"):
        request("GET", "/", host, headers, user_agent=None)


@given(st.text(max_size=8), st.text(max_size=8))
def test_request_head_has_exactly_its_own_line_breaks(name: str, value: str) -> None:
    try:
        head = request("GET", "/", "h:1", (("X-" + name, value),), user_agent=None)
    except (ValueError, UnicodeEncodeError):
        assert set("\r\n\0") & set(name + value) or not (name + value).isascii()
        return
    assert head.count(b"\r\n") == 4 and head.count(b"\r") == 4 and head.count(b"\n") == 4 and b"\0" not in head


CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"6\r\nline1\n\r\n6;ext=1\r\nline2\n\r\n0\r\nX-Trailer: t\r\n\r\n")


def test_chunked_response_events() -> None:
    events = run(CHUNKED)
    head = events[0]
    assert isinstance(head, Response) and (head.status, head.reason) == (200, "OK")
    assert head.headers.get("content-type") == "text/plain; charset=utf-8"
    assert body_of(events) == b"line1\nline2\n" and events[-1] == EndOfMessage()


@given(st.lists(st.integers(0, len(CHUNKED)), max_size=12))
def test_chunked_split_anywhere_gives_the_same_body(cuts: list[int]) -> None:
    events = run(CHUNKED, cuts)
    assert body_of(events) == b"line1\nline2\n" and events[-1] == EndOfMessage()


@given(st.binary(max_size=300), st.lists(st.integers(0, 400), max_size=8))
def test_content_length_bodies_round_trip(body: bytes, cuts: list[int]) -> None:
    wire = b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    events = run(wire, [c for c in cuts if c <= len(wire)])
    assert isinstance(events[0], Response) and events[0].status == 404
    assert body_of(events) == body and events[-1] == EndOfMessage()


def test_close_delimited_body_ends_at_eof() -> None:
    events = run(b"HTTP/1.0 200 OK\r\n\r\nall of it", eof=True)
    assert body_of(events) == b"all of it" and events[-1] == EndOfMessage()


def test_switching_protocols_hands_over_the_rest() -> None:
    events = run(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x82\x01x")
    assert events[-1] == Switched(b"\x82\x01x")


def test_100_continue_is_skipped() -> None:
    events = run(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
    assert [type(e) for e in events] == [Response, EndOfMessage] and events[0].status == 204


@pytest.mark.parametrize(("wire", "message"), [
    (b"SSH-2.0-OpenSSH\r\n\r\n", 'malformed HTTP response "SSH-2.0-OpenSSH"'),
    (b"HTTP/1.1 2x0 OK\r\n\r\n", 'malformed HTTP status code "2x0"'),
    (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "malformed MIME header line: no colon"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 'bad Content-Length "-1"'),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 'unsupported transfer encoding: "gzip"'),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "malformed chunked encoding"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nabc", "malformed chunked encoding"),
], ids=["not-http", "status", "header", "length", "encoding", "chunk-size", "chunk-end"])
def test_malformed_responses(wire: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run(wire)


def test_eof_before_and_inside_a_response() -> None:
    with pytest.raises(ProtocolError, match="^EOF$"):
        run(b"", eof=True)
    with pytest.raises(ProtocolError, match="^unexpected EOF$"):
        run(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", eof=True)


def test_a_huge_head_is_refused() -> None:
    parser = ResponseParser()
    with pytest.raises(ProtocolError, match="exceeded"):
        for _ in range(20):
            parser.feed(b"HTTP/1.1 200 OK\r\n" + b"X: " + b"a" * 100_000 + b"\r\n")
    assert parser.state is State.HEAD


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_crash_the_parser(data: bytes) -> None:
    parser = ResponseParser()
    try:
        parser.feed(data)
        parser.feed_eof()
    except ProtocolError:
        pass


HEADS = st.lists(st.sampled_from([
    b"Content-Length: 3", b"Content-Length: 0", b"Content-Length: 03", b"Content-Length: \xb2",
    b"Content-Length: 3, 3", b"Transfer-Encoding: chunked", b"Connection: close", b"Content-Type: text/html",
    b"X-A:  padded \t", b"bad line",
]), max_size=4)


@given(st.sampled_from([b"200 OK", b"204 No Content", b"304 Not Modified",
                        b"100 Continue", b"404 Not Found", b"2x0 Bad"]),
       HEADS, st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"abcd"]), st.sampled_from(["GET", "HEAD"]))
def test_a_whole_response_in_one_piece_gives_what_byte_by_byte_gives(status: bytes, fields: list[bytes],
                                                                      body: bytes, method: str) -> None:
    """The one-piece fast path (ResponseParser._whole) is only a shortcut: same events, same errors."""
    wire = b"HTTP/1.1 " + status + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n" + body

    def outcome(pieces: list[bytes]) -> object:
        parser = ResponseParser(method=method)
        events: list[object] = []
        try:
            for piece in pieces:
                events += parser.feed(piece)
        except ProtocolError as exc:
            return ("error", str(exc))
        merged: list[object] = []  # Data split where the bytes were split: compare the bytes
        for event in events:
            if isinstance(event, Data) and merged and isinstance(merged[-1], Data):
                merged[-1] = Data(merged[-1].data + event.data)
            elif not (isinstance(event, Data) and not event.data):
                merged.append(event)
        return merged, parser.state

    assert outcome([wire]) == outcome([wire[i:i + 1] for i in range(len(wire))])


def test_a_non_ascii_digit_length_is_a_protocol_error() -> None:
    for wire in (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab", b"HTTP/1.1 2\xb200 OK\r\n\r\n"):
        with pytest.raises(ProtocolError):
            run(wire)


def test_heads_are_kept_and_long_ones_still_parse() -> None:
    wire = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: x\r\n\r\nok"
    first, second = run(wire), run(wire)
    assert first == second and first[0] is second[0]  # the same immutable Response object
    long_head = b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * 10_000 + b"\r\nContent-Length: 2\r\n\r\nok"
    events = run(long_head)
    assert isinstance(events[0], Response) and events[0].headers.get("x-long") == "a" * 10_000
    assert body_of(events) == b"ok"
