"""SPDY/3 header blocks: the name/value layout and its zlib compression with the preset dictionary.

Used by :mod:`miniapi.streaming.spdy` for SYN_STREAM, SYN_REPLY and HEADERS. Spec: SPDY/3 draft
2.6.10; Go peer: moby/spdystream ``spdy/{read,write}.go``.

An uncompressed block (what kubectl's port-forward error stream carries)::

    00 00 00 03                          3 headers
    00 00 00 04 70 6f 72 74              len 4 "port"
    00 00 00 02 38 30                    len 2 "80"
    00 00 00 09 72 65 71 75 65 73 74 69 64          "requestid"
    00 00 00 01 30                                  "0"
    00 00 00 0a 73 74 72 65 61 6d 74 79 70 65       "streamtype"
    00 00 00 05 65 72 72 6f 72                      "error"

Several values of one name are joined by ``00``. Names are lowercase (the Go client writes
``streamType``/``requestID`` and they arrive lowercased).

Compression: one deflate context per direction for the whole session, each block ending in a
zlib SYNC_FLUSH; one inflate context for every block received. The first block starts with the
zlib header ``78 f9`` + the dictionary's Adler-32 ``e3 c6 a7 c2``; every block ends with
``00 00 ff ff``. Because the contexts are shared, a zlib error poisons every later block: it is
fatal for the session, whereas a block that inflates fine but is malformed only costs its stream
(RST_STREAM PROTOCOL_ERROR).
"""

from __future__ import annotations

import struct
import zlib

from miniapi.streaming.errors import ProtocolError

__all__ = ["DICTIONARY", "HeaderBlockError", "HeaderCompressor", "HeaderDecompressor", "Headers",
           "pack_headers", "unpack_headers"]

Headers = tuple[tuple[str, str], ...]

# SPDY/3 spec 2.6.10.1: length-prefixed words, then a run of common values. 1423 bytes,
# sha256 51d27341373f923f... (checked in tests/protocol/test_spdy_headers.py).
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base content-encoding "
    "content-language content-length content-location content-md5 content-range content-type date "
    "etag expect expires from host if-match if-modified-since if-none-match if-range "
    "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
    "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
    "user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,"
    "deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
DICTIONARY = b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _TAIL.encode()


class HeaderBlockError(Exception):
    """The block inflated fine but is not a valid name/value block: reset only its stream."""


def pack_headers(headers: Headers) -> bytes:
    """Uncompressed block; repeated names are joined with ``00`` as the Go writer does."""
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    out = [struct.pack(">I", len(grouped))]
    for name, values in grouped.items():
        raw_name, raw_value = name.encode("latin-1"), "\x00".join(values).encode("latin-1")
        out += [struct.pack(">I", len(raw_name)), raw_name, struct.pack(">I", len(raw_value)), raw_value]
    return b"".join(out)


def unpack_headers(block: bytes) -> Headers:
    """Parse an uncompressed block; :class:`HeaderBlockError` names what is wrong."""
    view, pos = memoryview(block), 4
    if len(block) < 4:
        raise HeaderBlockError("header block shorter than its count")
    (count,) = struct.unpack_from(">I", block)
    if count > len(block) // 8:  # every pair needs at least two length fields
        raise HeaderBlockError(f"header count {count} does not fit in {len(block)} bytes")
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _ in range(count):
        name, pos = _field(view, pos)
        value, pos = _field(view, pos)
        if not name:
            raise HeaderBlockError("zero-length header name")
        if name != name.lower():
            raise HeaderBlockError(f"header was not lowercased: {name!r}")
        if name in seen:
            raise HeaderBlockError(f"multiple headers with same name: {name!r}")
        seen.add(name)
        out.extend((name, v) for v in value.split("\x00"))
    if pos != len(block):
        raise HeaderBlockError(f"{len(block) - pos} bytes after the last header")
    return tuple(out)


def _field(view: memoryview, pos: int) -> tuple[str, int]:
    if pos + 4 > len(view):
        raise HeaderBlockError("header block truncated")
    (length,) = struct.unpack_from(">I", view, pos)
    end = pos + 4 + length
    if end > len(view):
        raise HeaderBlockError("header block truncated")
    return bytes(view[pos + 4:end]).decode("latin-1"), end


class HeaderCompressor:
    """The sending side's deflate context, shared by every header block of one session."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(pack_headers(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    """The receiving side's inflate context. ``max_size`` bounds one inflated block (zip bombs)."""

    def __init__(self, max_size: int = 64 * 1024) -> None:
        self._z = zlib.decompressobj(zdict=DICTIONARY)
        self.max_size = max_size

    def decompress(self, block: bytes) -> Headers:
        """Inflate and parse. ProtocolError: context broken (fatal); HeaderBlockError: stream only."""
        try:
            raw = self._z.decompress(block, self.max_size + 1)
            oversize = len(raw) > self.max_size
            drained = 0
            while self._z.unconsumed_tail:  # keep the shared context in step, discard the output
                drained += len(self._z.decompress(self._z.unconsumed_tail, 1 << 16))
                if drained > 256 * self.max_size:
                    raise ProtocolError("header block inflates beyond any sane size")
        except zlib.error as exc:
            raise ProtocolError(f"header block does not inflate: {exc}") from None
        if self._z.eof:
            raise ProtocolError("header block ended the zlib stream")
        if oversize:
            raise HeaderBlockError(f"header block larger than {self.max_size} bytes")
        return unpack_headers(raw)
