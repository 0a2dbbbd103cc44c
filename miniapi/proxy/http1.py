"""HTTP/1.1 for the apiserver's end of a kubelet connection, sans-IO: request bytes out, events in.

No sockets here (h11's shape): :func:`request` renders a request head, :class:`ResponseParser` turns
whatever bytes arrive, split anywhere, into events. A log request and its reply on the wire::

    GET /containerLogs/default/p/c1?follow=true HTTP/1.1\\r\\n
    Host: 127.0.0.2:10250\\r\\n
    User-Agent: Go-http-client/1.1\\r\\n
    \\r\\n

    HTTP/1.1 200 OK\\r\\n
    Content-Type: text/plain; charset=utf-8\\r\\n
    Transfer-Encoding: chunked\\r\\n
    \\r\\n
    6\\r\\nline1\\n\\r\\n
    0\\r\\n\\r\\n

    feed() -> [Response(200, "OK", headers), Data(b"line1\\n"), EndOfMessage()]

States (body framing per RFC 9112 section 6.3)::

    HEAD        -- head parsed --> CHUNK_SIZE (chunked) | BODY_LENGTH (Content-Length) | BODY_CLOSE
                                   (neither: until EOF) | DONE (1xx-less 204/304, length 0) |
                                   SWITCHED (101: the rest is the upgraded protocol's, see Switched)
    CHUNK_SIZE  -- "N\\r\\n" -->   CHUNK_DATA (N > 0) | TRAILERS (N == 0)
    CHUNK_DATA  -- N bytes -->     CHUNK_END -- "\\r\\n" --> CHUNK_SIZE
    TRAILERS    -- "\\r\\n" -->     DONE
    BODY_LENGTH -- all bytes -->   DONE;   BODY_CLOSE -- EOF --> DONE

Errors are :class:`~miniapi.proxy.errors.ProtocolError` carrying Go's net/http wording.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass

from miniapi.proxy.errors import ProtocolError

MAX_HEAD_BYTES = 1 << 20  # Go's http.Transport default MaxResponseHeaderBytes is 10 MiB; 1 MiB here
MAX_CHUNK_LINE = 4096
USER_AGENT = "Go-http-client/1.1"  # what the real apiserver's kubelet transport sends (no UA configured)
_FORBIDDEN_IN_HEAD = frozenset("\r\n\0")


class State(enum.Enum):
    HEAD = "HEAD"
    CHUNK_SIZE = "CHUNK_SIZE"
    CHUNK_DATA = "CHUNK_DATA"
    CHUNK_END = "CHUNK_END"
    TRAILERS = "TRAILERS"
    BODY_LENGTH = "BODY_LENGTH"
    BODY_CLOSE = "BODY_CLOSE"
    DONE = "DONE"
    SWITCHED = "SWITCHED"


class Headers:
    """Header fields in arrival order; lookups are case-insensitive, through an index by lower-case
    name built once (a proxied response is looked up several times). Treat as immutable."""

    __slots__ = ("_hash", "_index", "items")

    def __init__(self, items: tuple[tuple[str, str], ...] = (),
                 index: dict[str, list[str]] | None = None) -> None:
        self.items = items
        self._hash = hash(items)  # a kept head's Headers are looked up by value (hash once)
        if index is None:
            index = {}
            for k, v in items:
                index.setdefault(k.lower(), []).append(v)
        self._index = index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other.items == self.items

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"Headers(items={self.items!r})"

    def get(self, name: str, default: str = "") -> str:
        found = self._index.get(name.lower())
        return found[0] if found else default

    def get_all(self, name: str) -> list[str]:
        return list(self._index.get(name.lower(), ()))


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    headers: Headers

    @functools.cached_property
    def fixed_length(self) -> int | None:
        """The body's length when one valid Content-Length frames it (no Transfer-Encoding, not a
        1xx/204/304 answer); None otherwise. Worked out once per (kept) head."""
        if self.status < 200 or self.status in (204, 304) or self.headers.get("Transfer-Encoding"):
            return None
        length = self.headers.get_all("Content-Length")
        return int(length[0]) if len(length) == 1 and _is_digits(length[0]) else None


@dataclass(frozen=True)
class Data:
    data: bytes


@dataclass(frozen=True)
class EndOfMessage:
    pass


_END = EndOfMessage()


@dataclass(frozen=True)
class Switched:
    """After ``101 Switching Protocols``: bytes that followed the head belong to the new protocol."""

    rest: bytes


Event = Response | Data | EndOfMessage | Switched


def request(method: str, target: str, host: str, headers: tuple[tuple[str, str], ...] = (),
            user_agent: str | None = USER_AGENT) -> bytes:
    """A request head (no body). Refuses CR, LF, NUL and spaces where they would split the head.
    ``user_agent=None``: no User-Agent of our own (the proxy forwards the client's)."""
    if " " in method or " " in target or not target.startswith("/"):
        raise ValueError(f"invalid request line: {method} {target}")
    agent = [f"User-Agent: {user_agent}"] if user_agent is not None else []
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *agent,
             *[f"{name}: {value}" for name, value in headers], "", ""]
    head = "\r\n".join(lines)
    # the joins hold len(lines) - 1 CRs and LFs: any more came from a part (one C-level scan each)
    if head.count("\r") != len(lines) - 1 or head.count("\n") != len(lines) - 1 or "\0" in head:
        for part in (method, target, host, *(x for pair in headers for x in pair)):
            if _FORBIDDEN_IN_HEAD.intersection(part):
                raise ValueError(f"invalid character in HTTP request head: {part!r}")
    return head.encode("latin-1")


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked request body: ``5\\r\\nhello\\r\\n``; :data:`LAST_CHUNK` ends the body."""
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"


class ResponseParser:
    """One response of one connection (the apiserver never pipelines to a kubelet)."""

    def __init__(self, *, method: str = "GET") -> None:
        self.state = State.HEAD
        self._method = method
        self._buf = bytearray()
        self._remaining = 0

    def feed(self, data: bytes) -> list[Event]:
        if self.state is State.DONE and data:
            raise ProtocolError("net/http: server sent data after the end of the response")
        if self.state is State.SWITCHED:
            raise ProtocolError("the connection was switched to another protocol")
        events: list[Event] = []
        if self.state is State.HEAD and not self._buf and self._whole(data, events):
            return events
        self._buf += data
        while self._step(events):
            pass
        return events

    def _whole(self, data: bytes, events: list[Event]) -> bool:
        """The common small answer: a final head and its whole Content-Length body in one ``data``.
        Same events as the general path, without copying the bytes through the buffer; False (nothing
        consumed) for anything else."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or self._method == "HEAD":
            return False
        response = parse_head_bytes(data[:end])
        body = data[end + 4:]
        if not body or response.fixed_length != len(body):
            return False
        events += (response, Data(body), _END)
        self.state = State.DONE
        return True

    def feed_eof(self) -> list[Event]:
        """The peer closed: the end of a close-delimited body, or an error anywhere else."""
        if self.state is State.BODY_CLOSE:
            self.state = State.DONE
            return [EndOfMessage()]
        if self.state in (State.DONE, State.SWITCHED):
            return []
        raise ProtocolError("EOF" if self.state is State.HEAD and not self._buf else "unexpected EOF")

    # -- one transition per call; False when more bytes are needed --------------------------------
    def _step(self, events: list[Event]) -> bool:
        state = self.state
        if state is State.HEAD:
            return self._head(events)
        if state is State.BODY_LENGTH or state is State.CHUNK_DATA:
            return self._fixed(events)
        if state is State.BODY_CLOSE:
            if self._buf:
                events.append(Data(bytes(self._buf)))
                self._buf.clear()
            return False
        if state is State.CHUNK_SIZE:
            return self._chunk_size()
        if state is State.CHUNK_END:
            return self._chunk_end()
        if state is State.TRAILERS:
            return self._trailers(events)
        return False

    def _head(self, events: list[Event]) -> bool:
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > MAX_HEAD_BYTES:
                raise ProtocolError(f"net/http: server response headers exceeded {MAX_HEAD_BYTES} bytes; aborted")
            return False
        head = bytes(self._buf[:end])
        del self._buf[:end + 4]
        response = parse_head_bytes(head)
        if 100 <= response.status < 200 and response.status != 101:
            return True  # 100 Continue and friends: the real response follows
        events.append(response)
        self._frame(response, events)
        return self.state not in (State.DONE, State.SWITCHED)

    def _frame(self, response: Response, events: list[Event]) -> None:
        h = response.headers
        if response.status == 101:
            self.state = State.SWITCHED
            events.append(Switched(bytes(self._buf)))
            self._buf.clear()
            return
        if response.status in (204, 304) or self._method == "HEAD":
            self._done(events)
            return
        encodings = [e.strip().lower() for v in h.get_all("Transfer-Encoding") for e in v.split(",") if e.strip()]
        if encodings:
            if encodings != ["chunked"]:
                raise ProtocolError(f'net/http: HTTP/1.x transport connection broken: unsupported transfer '
                                    f'encoding: "{",".join(encodings)}"')
            self.state = State.CHUNK_SIZE
            return
        lengths = {v.strip() for v in h.get_all("Content-Length")}
        if not lengths:
            self.state = State.BODY_CLOSE
            return
        if len(lengths) > 1 or not _is_digits(next(iter(lengths))):
            raise ProtocolError(f'net/http: HTTP/1.x transport connection broken: bad Content-Length '
                                f'"{h.get("Content-Length")}"')
        self._remaining = int(next(iter(lengths)))
        if self._remaining == 0:
            self._done(events)
        else:
            self.state = State.BODY_LENGTH

    def _fixed(self, events: list[Event]) -> bool:
        if not self._buf:
            return False
        take = bytes(self._buf[:self._remaining])
        del self._buf[:len(take)]
        self._remaining -= len(take)
        events.append(Data(take))
        if self._remaining == 0:
            if self.state is State.CHUNK_DATA:
                self.state = State.CHUNK_END
            else:
                self._done(events)
        return self.state is not State.DONE

    def _chunk_size(self) -> bool:
        line = self._line()
        if line is None:
            return False
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError("malformed chunked encoding") from None
        if size < 0 or len(size_text) > 16:
            raise ProtocolError("http chunk length too large")
        if size == 0:
            self.state = State.TRAILERS
        else:
            self._remaining, self.state = size, State.CHUNK_DATA
        return True

    def _chunk_end(self) -> bool:
        if len(self._buf) < 2:
            return False
        if bytes(self._buf[:2]) != b"\r\n":
            raise ProtocolError("malformed chunked encoding")
        del self._buf[:2]
        self.state = State.CHUNK_SIZE
        return True

    def _trailers(self, events: list[Event]) -> bool:
        line = self._line()
        if line is None:
            return False
        if line == b"":
            self._done(events)
            return False
        return True  # a trailer field: ignored, as Go's Transport exposes them only after the body

    def _line(self) -> bytes | None:
        end = self._buf.find(b"\r\n")
        if end < 0:
            if len(self._buf) > MAX_CHUNK_LINE:
                raise ProtocolError("malformed chunked encoding")
            return None
        line = bytes(self._buf[:end])
        del self._buf[:end + 2]
        return line

    def _done(self, events: list[Event]) -> None:
        self.state = State.DONE
        events.append(EndOfMessage())
        if self._buf:
            raise ProtocolError("net/http: server sent data after the end of the response")


def _is_digits(text: str) -> bool:
    """ASCII digits only (``"²".isdigit()`` is true, and int() refuses it)."""
    return text.isascii() and text.isdigit()


def parse_head_bytes(head: bytes) -> Response:
    """:func:`parse_head` of the wire bytes (latin-1). Pure, and a backend answers with the same head
    again and again (until its Date changes), so the answers for heads up to :data:`KEPT_HEAD_BYTES`
    are kept (:data:`KEPT_HEADS` of them, least recently used dropped): the objects are immutable."""
    if len(head) <= KEPT_HEAD_BYTES:
        return _kept_head(head)
    return parse_head(head.decode("latin-1"))


@functools.lru_cache(maxsize=256)
def _kept_head(head: bytes) -> Response:
    return parse_head(head.decode("latin-1"))


KEPT_HEADS = _kept_head.cache_info().maxsize
KEPT_HEAD_BYTES = 4096


def parse_head(head: str) -> Response:
    """``HTTP/1.1 200 OK`` + header lines -> Response (Go's ReadResponse checks and messages)."""
    status_line, *lines = head.split("\r\n")
    proto, _, rest = status_line.partition(" ")
    code_text, _, reason = rest.partition(" ")
    if not proto.startswith("HTTP/1.") or not rest:
        raise ProtocolError(f'net/http: HTTP/1.x transport connection broken: malformed HTTP response '
                            f'"{status_line}"')
    if len(code_text) != 3 or not _is_digits(code_text):
        raise ProtocolError(f'net/http: HTTP/1.x transport connection broken: malformed HTTP status code '
                            f'"{code_text}"')
    items = []
    index: dict[str, list[str]] = {}
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[:1] in (" ", "\t"):
            raise ProtocolError(f"net/http: HTTP/1.x transport connection broken: malformed MIME header "
                                f"line: {line}")
        value = value.strip(" \t")
        items.append((name, value))
        low = name.lower()
        if low in index:
            index[low].append(value)
        else:
            index[low] = [value]
    return Response(int(code_text), reason, Headers(tuple(items), index))
